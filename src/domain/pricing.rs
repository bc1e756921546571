//! The estimated cost of a call's OpenAI Realtime usage, from OpenAI's published per-token
//! prices. An estimate: the tenant's own OpenAI invoice is authoritative (discounts, price
//! changes, transcription billed separately).

/// US dollars per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TokenPrices {
    pub audio_input: f64,
    pub audio_input_cached: f64,
    pub audio_output: f64,
    pub text_input: f64,
    pub text_input_cached: f64,
    pub text_output: f64,
}

/// `gpt-realtime` (GA, 2025-08) and the models priced like it.
const REALTIME: TokenPrices = TokenPrices {
    audio_input: 32.0,
    audio_input_cached: 0.40,
    audio_output: 64.0,
    text_input: 4.0,
    text_input_cached: 0.40,
    text_output: 16.0,
};

/// `gpt-realtime-mini`.
const REALTIME_MINI: TokenPrices = TokenPrices {
    audio_input: 10.0,
    audio_input_cached: 0.30,
    audio_output: 20.0,
    text_input: 0.60,
    text_input_cached: 0.06,
    text_output: 2.40,
};

/// The prices for `model`: the mini family by name, every other realtime model at the full
/// model's prices (the conservative choice for an unknown model).
pub(crate) fn prices_for(model: &str) -> TokenPrices {
    if model.contains("mini") {
        REALTIME_MINI
    } else {
        REALTIME
    }
}

/// Token counts of a call, by kind. Cached tokens are a subset of the input tokens; OpenAI
/// says how many of them were text and how many audio (`cached_tokens_details`), and those are
/// priced at the cached rates. Cached tokens reported without that split are priced as
/// uncached: an overestimate rather than a guess.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenCounts {
    pub input_audio: u64,
    pub input_text: u64,
    pub input_cached_audio: u64,
    pub input_cached_text: u64,
    pub output_audio: u64,
    pub output_text: u64,
}

/// Estimated cost in US dollars, rounded to a millionth of a dollar.
pub(crate) fn estimate_cost_usd(model: &str, tokens: TokenCounts) -> f64 {
    let prices = prices_for(model);
    let cached_audio = tokens.input_cached_audio.min(tokens.input_audio);
    let cached_text = tokens.input_cached_text.min(tokens.input_text);
    let per_million = |count: u64, price: f64| count as f64 * price / 1_000_000.0;
    let cost = per_million(tokens.input_audio - cached_audio, prices.audio_input)
        + per_million(cached_audio, prices.audio_input_cached)
        + per_million(tokens.input_text - cached_text, prices.text_input)
        + per_million(cached_text, prices.text_input_cached)
        + per_million(tokens.output_audio, prices.audio_output)
        + per_million(tokens.output_text, prices.text_output);
    (cost * 1_000_000.0).round() / 1_000_000.0
}

/// Text models' list prices in US dollars per million tokens, input and output, by model id;
/// a dated snapshot (`claude-sonnet-4-5-20250929`) has its model's price. Models not listed
/// here (any Chat Completions server's, newer or older families) get no estimate rather than
/// a guess.
const TEXT_PRICES: &[(&str, f64, f64)] = &[
    ("claude-opus-4-7", 5.0, 25.0),
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("gpt-5.1", 1.25, 10.0),
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4o-mini", 0.15, 0.60),
];

/// Whether `model` is `id` or a dated snapshot of it (`id-2025…`).
fn is_model(model: &str, id: &str) -> bool {
    model
        .strip_prefix(id)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("-2"))
}

/// The estimated cost of a text request, rounded to a millionth of a dollar; `None` for a
/// model without a known price.
pub(crate) fn text_cost_usd(model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
    let (_, input, output) = TEXT_PRICES.iter().find(|(id, _, _)| is_model(model, id))?;
    let cost = (input_tokens as f64 * input + output_tokens as f64 * output) / 1_000_000.0;
    Some((cost * 1_000_000.0).round() / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_of_conversation_costs_cents() {
        let tokens = TokenCounts {
            input_audio: 10_000,
            input_text: 1_000,
            input_cached_audio: 1_500,
            input_cached_text: 500,
            output_audio: 5_000,
            output_text: 500,
        };
        // 8500*32 + 1500*0.4 + 500*4 + 500*0.4 + 5000*64 + 500*16 = 602,800 per million.
        assert_eq!(estimate_cost_usd("gpt-realtime", tokens), 0.6028);
        assert!(estimate_cost_usd("gpt-realtime-mini", tokens) < 0.2);
    }

    #[test]
    fn cached_text_is_priced_as_text_not_as_audio() {
        // 1000 cached tokens, all text: the old "audio first" rule priced them at the audio
        // cached rate and the audio at the text rate's share, which is wrong both ways.
        let tokens = TokenCounts {
            input_audio: 1_000,
            input_text: 1_000,
            input_cached_text: 1_000,
            ..TokenCounts::default()
        };
        // 1000*32 + 1000*0.4 = 32,400 per million.
        assert_eq!(estimate_cost_usd("gpt-realtime", tokens), 0.0324);
    }

    #[test]
    fn no_tokens_cost_nothing_and_cached_never_exceeds_input() {
        assert_eq!(
            estimate_cost_usd("gpt-realtime", TokenCounts::default()),
            0.0
        );
        let odd = TokenCounts {
            input_cached_audio: 50,
            input_cached_text: 50,
            input_audio: 10,
            input_text: 10,
            ..TokenCounts::default()
        };
        assert!(estimate_cost_usd("gpt-realtime", odd) >= 0.0);
    }

    #[test]
    fn text_models_are_priced_by_family_and_unknown_ones_not_at_all() {
        assert_eq!(
            super::text_cost_usd("claude-sonnet-4-5", 1_000_000, 0),
            Some(3.0)
        );
        assert_eq!(
            super::text_cost_usd("claude-haiku-4-5-20251001", 1_000, 1_000),
            Some(0.006)
        );
        assert_eq!(super::text_cost_usd("gpt-5-mini", 0, 1_000_000), Some(2.0));
        assert_eq!(super::text_cost_usd("gpt-5", 1_000_000, 0), Some(1.25));
        assert_eq!(super::text_cost_usd("llama3.1:8b", 1_000, 1_000), None);
        // Families priced apart are not matched by a shared prefix.
        assert_eq!(
            super::text_cost_usd("claude-opus-4-1", 1_000_000, 0),
            Some(15.0)
        );
        assert_eq!(
            super::text_cost_usd("claude-opus-4-7", 1_000_000, 0),
            Some(5.0)
        );
        assert_eq!(
            super::text_cost_usd("claude-opus-4-20250514", 1_000_000, 0),
            Some(15.0)
        );
        assert_eq!(super::text_cost_usd("gpt-5-pro", 1_000_000, 0), None);
    }
}
