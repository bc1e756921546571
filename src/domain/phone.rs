//! Phone numbers in E.164 form (`+` then 7 to 15 digits, the first 1–9).
//!
//! Numbers are normalised once, at the edge, so that the platform-wide unique index on
//! `phone_numbers.phone_number` and the lookup of an inbound call's number compare the same
//! spelling: "+1 (415) 555-0100", "001 415 555 0100" and "+14155550100" are one number.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use utoipa::ToSchema;

use super::validation::ValidationError;

/// A phone number in normalised E.164 form. Only [`PhoneNumber::parse`] (and deserialization,
/// which calls it) can build one, so holding a `PhoneNumber` means the shape was checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PhoneNumber(String);

/// Why a phone number was refused. The message is safe to show a client: it never repeats the
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an E.164 number such as +14155550100")]
pub(crate) struct InvalidPhoneNumber;

impl PhoneNumber {
    /// Fewest digits after the `+` (short national numbers in the smallest plans).
    pub(crate) const MIN_DIGITS: usize = 7;
    /// Most digits after the `+` (the E.164 maximum).
    pub(crate) const MAX_DIGITS: usize = 15;

    /// Parses and normalises a number as people write it: surrounding whitespace is trimmed;
    /// spaces, `-`, `.`, `(` and `)` are removed; a leading international `00` becomes `+`.
    /// What remains must be `+` followed by 7 to 15 digits, the first of them 1–9. Anything
    /// else (letters, a national number without `+`, a leading `+0`) is refused rather than
    /// guessed at, because a wrong guess would route a call to someone else.
    pub(crate) fn parse(input: &str) -> Result<PhoneNumber, InvalidPhoneNumber> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = match compact.strip_prefix("00") {
            Some(rest) => rest,
            None => compact.strip_prefix('+').ok_or(InvalidPhoneNumber)?,
        };
        let well_formed = (Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !well_formed {
            return Err(InvalidPhoneNumber);
        }
        Ok(PhoneNumber(format!("+{digits}")))
    }

    /// [`PhoneNumber::parse`], reporting a failure against the request field `field`.
    pub(crate) fn parse_field(field: &str, input: &str) -> Result<PhoneNumber, ValidationError> {
        Self::parse(input).map_err(|err| ValidationError::new(field, err.to_string()))
    }

    /// The normalised number, e.g. `+14155550100`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let input = String::deserialize(deserializer)?;
        PhoneNumber::parse(&input).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NumberStatus {
    /// Takes calls.
    Active,
    /// Kept, but calls to it are refused (hang-up flow).
    Inactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Capabilities {
    pub voice: bool,
    pub sms: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_common_spellings() {
        let cases = [
            ("+14155550100", "+14155550100"),
            ("+1 (415) 555-0100", "+14155550100"),
            ("  +1.415.555.0100 ", "+14155550100"),
            ("0044 20 7946 0958", "+442079460958"),
            ("00442079460958", "+442079460958"),
            ("+91-98765-43210", "+919876543210"),
            ("+1234567", "+1234567"), // 7 digits, the minimum
            ("+123456789012345", "+123456789012345"), // 15 digits, the maximum
        ];
        for (input, expected) in cases {
            let parsed = PhoneNumber::parse(input)
                .unwrap_or_else(|_| panic!("{input:?} should be accepted"));
            assert_eq!(parsed.as_str(), expected, "input {input:?}");
            assert_eq!(parsed.to_string(), expected);
        }
    }

    #[test]
    fn rejects_anything_that_is_not_e164() {
        let cases = [
            "",
            "+",
            "00",
            "4155550100",        // national number, no +
            "+0123456789",       // leading +0
            "000123456789",      // 00 then a leading 0
            "+1415555010012345", // 16 digits
            "+123456",           // 6 digits
            "+1abc",
            "+1 415 555 0100 ext 2",
            "++14155550100",
            "+1+4155550100",
            "+1\t4155550100",
            "+١٤١٥٥٥٥٠١٠٠", // non-ASCII digits
            "tel:+14155550100",
        ];
        for input in cases {
            assert_eq!(
                PhoneNumber::parse(input),
                Err(InvalidPhoneNumber),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn parse_field_names_the_field() {
        let err = PhoneNumber::parse_field("phone_number", "555").unwrap_err();
        assert_eq!(err.field, "phone_number");
        assert_eq!(err.message, "must be an E.164 number such as +14155550100");
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let number = PhoneNumber::parse("+1 415 555 0100").unwrap();
        let json = serde_json::to_string(&number).unwrap();
        assert_eq!(json, "\"+14155550100\"");
        assert_eq!(serde_json::from_str::<PhoneNumber>(&json).unwrap(), number);
        // Deserialization normalises too.
        assert_eq!(
            serde_json::from_str::<PhoneNumber>("\"0044 20 7946 0958\"")
                .unwrap()
                .as_str(),
            "+442079460958"
        );
        let err = serde_json::from_str::<PhoneNumber>("\"4155550100\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("must be an E.164 number such as +14155550100"),
            "{err}"
        );
        assert!(serde_json::from_str::<PhoneNumber>("14155550100").is_err());
    }
}
