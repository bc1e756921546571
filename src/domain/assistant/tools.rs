//! The tools an assistant may use during a call, as the tenant configures them: end the call,
//! transfer it to one of a fixed list of destinations, press keypad keys, call the tenant's own
//! HTTP endpoint, or use a remote MCP server through OpenAI.
//!
//! Everything here is configuration and its rules; running a tool is the bridge's job
//! (`bridge::tool_runner`). The model never chooses a phone number: a transfer names a destination
//! `id` from this configuration (free-form numbers would be toll fraud waiting to happen).
//!
//! HTTP header values and the MCP authorization may reference the tenant's stored secrets as
//! `{{secret.NAME}}`; the values are substituted only when the request is made, so they are
//! never stored in the assistant or returned.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::phone::PhoneNumber;
use crate::domain::validation::{ValidationError, check_chars, check_name};

/// Most tools one assistant may declare: more only confuses the model and bloats every turn.
pub const MAX_TOOLS: usize = 32;
/// Longest tool or destination description.
pub const DESCRIPTION_MAX_CHARS: usize = 2_000;
/// Most transfer destinations per tool.
pub const MAX_DESTINATIONS: usize = 20;
/// Most custom headers per HTTP tool.
pub const MAX_HEADERS: usize = 20;
/// Longest header value, secret references included.
pub const HEADER_VALUE_MAX_CHARS: usize = 4_096;
/// Largest JSON Schema for an HTTP tool's arguments, serialized.
pub const PARAMETERS_MAX_BYTES: usize = 16 * 1024;
/// Longest tool URL.
pub const URL_MAX_CHARS: usize = 2_048;
/// Most tool names an MCP tool may allow.
pub const MAX_ALLOWED_TOOLS: usize = 64;
/// Keypad digits one `send_dtmf` call may press.
pub const DTMF_MAX_DIGITS: usize = 32;

/// The rule for tool, destination and secret names: what OpenAI accepts for function names.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_identifier(field: &str, name: &str) -> Result<(), ValidationError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "must be 1 to 64 ASCII letters, digits, '_' or '-'",
        ))
    }
}

/// Keypad digits as `send_dtmf` accepts them: `[0-9*#]{1,32}`.
pub fn is_valid_dtmf(digits: &str) -> bool {
    (1..=DTMF_MAX_DIGITS).contains(&digits.len())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// One tool of an assistant. The `type` selects the kind; `name` is unique per assistant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    /// The model ends the call once its goodbye has been heard.
    EndCall(EndCallTool),
    /// The model hands the caller to one of `destinations` (a cold transfer through FreJun).
    TransferCall(TransferCallTool),
    /// The model presses keypad keys (to navigate a phone menu on an outbound call).
    SendDtmf(SendDtmfTool),
    /// The model calls the tenant's HTTPS endpoint; the response body is its answer.
    Http(HttpTool),
    /// A remote MCP server that OpenAI itself calls (passed through in the session).
    Mcp(McpTool),
}

/// `type: end_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndCallTool {
    /// `^[a-zA-Z0-9_-]{1,64}$`, unique per assistant.
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    /// Tells the model when to use it, e.g. "End the call once the caller has said goodbye."
    #[schema(max_length = 2_000)]
    pub description: String,
}

/// `type: transfer_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferCallTool {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    #[schema(max_length = 2_000)]
    pub description: String,
    /// Where the model may send the caller; it picks one by `id`.
    #[schema(min_items = 1, max_items = 20)]
    pub destinations: Vec<TransferDestination>,
}

/// A place a call may be transferred to: exactly one of `number` and `sip_uri`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferDestination {
    /// What the model (and `POST /api/calls/{id}/transfer`) names it by.
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub id: String,
    /// A phone number, stored in E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// A SIP URI such as `sip:desk@pbx.example.com:5060`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 512)]
    pub sip_uri: Option<String>,
    /// Tells the model who is there, e.g. "Billing, for questions about invoices".
    #[schema(max_length = 2_000)]
    pub description: String,
}

/// Where a destination leads, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationTarget<'a> {
    Number(&'a str),
    SipUri(&'a str),
}

impl TransferDestination {
    /// Longest SIP URI.
    pub const SIP_URI_MAX_CHARS: usize = 512;

    /// The number or the SIP URI (validation guarantees exactly one).
    pub fn target(&self) -> DestinationTarget<'_> {
        match (&self.number, &self.sip_uri) {
            (Some(number), _) => DestinationTarget::Number(number),
            (None, Some(uri)) => DestinationTarget::SipUri(uri),
            (None, None) => DestinationTarget::Number(""),
        }
    }

    fn normalize(&mut self, field: &str) -> Result<(), ValidationError> {
        check_identifier(&format!("{field}.id"), &self.id)?;
        check_name(
            &format!("{field}.description"),
            &self.description,
            0,
            DESCRIPTION_MAX_CHARS,
        )?;
        match (&self.number, &self.sip_uri) {
            (Some(number), None) => {
                let parsed = PhoneNumber::parse_field(&format!("{field}.number"), number)?;
                self.number = Some(parsed.as_str().to_owned());
            }
            (None, Some(uri)) => check_sip_uri(&format!("{field}.sip_uri"), uri)?,
            _ => {
                return Err(ValidationError::new(
                    field,
                    "give exactly one of number and sip_uri",
                ));
            }
        }
        Ok(())
    }
}

/// `sip:` or `sips:`, a user part, `@`, a host; no spaces, controls or angle brackets (the URI
/// goes into SIP headers at FreJun).
fn check_sip_uri(field: &str, uri: &str) -> Result<(), ValidationError> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"));
    let well_formed = rest.is_some_and(|rest| {
        let mut parts = rest.splitn(2, '@');
        let user = parts.next().unwrap_or_default();
        let host = parts.next().unwrap_or_default();
        !user.is_empty() && !host.is_empty()
    }) && uri.len() <= TransferDestination::SIP_URI_MAX_CHARS
        && uri
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"'));
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "must be a SIP URI such as sip:desk@pbx.example.com:5060",
        ))
    }
}

/// `type: send_dtmf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendDtmfTool {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    #[schema(max_length = 2_000)]
    pub description: String,
}

/// The HTTP method of an `http` tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// `type: http`: a signed request to the tenant's endpoint with the model's arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTool {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    /// Tells the model what it does and when to use it.
    #[schema(max_length = 2_000)]
    pub description: String,
    /// `https://…`; plain `http` only to hosts in the operator's allow-list.
    #[schema(max_length = 2_048)]
    pub url: String,
    /// Default `POST`. The body is always the JSON envelope described in docs/api.md.
    #[serde(default)]
    pub method: HttpMethod,
    /// Extra request headers. Values may contain `{{secret.NAME}}`, replaced by the tenant's
    /// stored secret `NAME` when the request is made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON Schema (`type: object`) of the arguments the model passes. Default: no arguments.
    #[serde(default = "no_parameters")]
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Default 5000, at most 30000.
    #[serde(default = "HttpTool::default_timeout_ms")]
    #[schema(minimum = 100, maximum = 30_000)]
    pub timeout_ms: u32,
    /// How much of the response the model gets; default 16384, at most 65536.
    #[serde(default = "HttpTool::default_max_response_bytes")]
    #[schema(minimum = 256, maximum = 65_536)]
    pub max_response_bytes: u32,
    /// Cancel the request when the caller starts speaking (the model is then told it was
    /// cancelled). Default `false`: the result is kept and given to the model.
    #[serde(default)]
    pub cancel_on_barge_in: bool,
}

fn no_parameters() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Headers the signed request sets itself; a tool may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "expect",
];

impl HttpTool {
    pub const DEFAULT_TIMEOUT_MS: u32 = 5_000;
    pub const MIN_TIMEOUT_MS: u32 = 100;
    pub const MAX_TIMEOUT_MS: u32 = 30_000;
    pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 16 * 1024;
    pub const MIN_MAX_RESPONSE_BYTES: u32 = 256;
    pub const MAX_MAX_RESPONSE_BYTES: u32 = 64 * 1024;

    fn default_timeout_ms() -> u32 {
        Self::DEFAULT_TIMEOUT_MS
    }

    fn default_max_response_bytes() -> u32 {
        Self::DEFAULT_MAX_RESPONSE_BYTES
    }

    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let url_field = format!("{field}.url");
        check_chars(&url_field, &self.url, 1, URL_MAX_CHARS)?;
        let url = url::Url::parse(&self.url)
            .map_err(|_| ValidationError::new(&url_field, "must be an absolute https URL"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(ValidationError::new(
                &url_field,
                "must be an absolute https URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ValidationError::new(
                &url_field,
                "must not carry credentials; put them in a header with {{secret.NAME}}",
            ));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(ValidationError::new(
                format!("{field}.headers"),
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        for (name, value) in &self.headers {
            let header_field = format!("{field}.headers.{name}");
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || name.len() > 100 || !name.bytes().all(token) {
                return Err(ValidationError::new(
                    &header_field,
                    "header names are 1 to 100 characters of an HTTP token",
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ValidationError::new(
                    &header_field,
                    "is set by voxbridge itself and cannot be configured",
                ));
            }
            check_chars(&header_field, value, 0, HEADER_VALUE_MAX_CHARS)?;
            // Visible ASCII and spaces only: anything else would be mangled or refused by
            // HTTP stacks, and a line break would inject headers.
            if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(ValidationError::new(
                    &header_field,
                    "must be visible ASCII characters and spaces",
                ));
            }
            SecretTemplate::parse(&header_field, value)?;
        }
        check_parameters(&format!("{field}.parameters"), &self.parameters)?;
        if !(Self::MIN_TIMEOUT_MS..=Self::MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ValidationError::new(
                format!("{field}.timeout_ms"),
                format!(
                    "must be between {} and {}",
                    Self::MIN_TIMEOUT_MS,
                    Self::MAX_TIMEOUT_MS
                ),
            ));
        }
        if !(Self::MIN_MAX_RESPONSE_BYTES..=Self::MAX_MAX_RESPONSE_BYTES)
            .contains(&self.max_response_bytes)
        {
            return Err(ValidationError::new(
                format!("{field}.max_response_bytes"),
                format!(
                    "must be between {} and {}",
                    Self::MIN_MAX_RESPONSE_BYTES,
                    Self::MAX_MAX_RESPONSE_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// The stored secrets the headers reference.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.headers.values().flat_map(|value| {
            SecretTemplate::parse("", value)
                .map(|template| template.names().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    }
}

/// A JSON Schema for function arguments: an object schema of bounded size.
fn check_parameters(field: &str, parameters: &Value) -> Result<(), ValidationError> {
    let Some(object) = parameters.as_object() else {
        return Err(ValidationError::new(
            field,
            "must be a JSON Schema object with \"type\": \"object\"",
        ));
    };
    if object.get("type").and_then(Value::as_str) != Some("object") {
        return Err(ValidationError::new(
            field,
            "must be a JSON Schema object with \"type\": \"object\"",
        ));
    }
    if serde_json::to_vec(parameters).map_or(usize::MAX, |bytes| bytes.len()) > PARAMETERS_MAX_BYTES
    {
        return Err(ValidationError::new(
            field,
            format!("must be at most {PARAMETERS_MAX_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

/// `type: mcp`: a remote MCP server OpenAI calls itself. voxbridge passes it through with
/// `require_approval: never` (nobody can approve in the middle of a phone call) and the
/// `allowed_tools` given, which are required so a server cannot grow new powers unnoticed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpTool {
    /// Sent as the server's `server_label`.
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    /// Sent as `server_description`.
    #[schema(max_length = 2_000)]
    pub description: String,
    /// `https://…` (OpenAI connects to it, not voxbridge).
    #[schema(max_length = 2_048)]
    pub server_url: String,
    /// The server's tools the model may call.
    #[schema(min_items = 1, max_items = 64)]
    pub allowed_tools: Vec<String>,
    /// The name of a stored secret sent as the OAuth access token (`authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_secret: Option<String>,
}

impl McpTool {
    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let url_field = format!("{field}.server_url");
        check_chars(&url_field, &self.server_url, 1, URL_MAX_CHARS)?;
        let url = url::Url::parse(&self.server_url);
        if !url.is_ok_and(|url| url.scheme() == "https" && url.host_str().is_some()) {
            return Err(ValidationError::new(
                &url_field,
                "must be an absolute https URL",
            ));
        }
        if self.allowed_tools.is_empty() || self.allowed_tools.len() > MAX_ALLOWED_TOOLS {
            return Err(ValidationError::new(
                format!("{field}.allowed_tools"),
                format!("name 1 to {MAX_ALLOWED_TOOLS} of the server's tools"),
            ));
        }
        for (index, name) in self.allowed_tools.iter().enumerate() {
            check_chars(&format!("{field}.allowed_tools[{index}]"), name, 1, 128)?;
        }
        if let Some(secret) = &self.authorization_secret {
            check_identifier(&format!("{field}.authorization_secret"), secret)?;
        }
        Ok(())
    }
}

impl Tool {
    pub fn name(&self) -> &str {
        match self {
            Tool::EndCall(tool) => &tool.name,
            Tool::TransferCall(tool) => &tool.name,
            Tool::SendDtmf(tool) => &tool.name,
            Tool::Http(tool) => &tool.name,
            Tool::Mcp(tool) => &tool.name,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Tool::EndCall(tool) => &tool.description,
            Tool::TransferCall(tool) => &tool.description,
            Tool::SendDtmf(tool) => &tool.description,
            Tool::Http(tool) => &tool.description,
            Tool::Mcp(tool) => &tool.description,
        }
    }

    /// The `type`, as serialized.
    pub fn kind(&self) -> ToolKind {
        match self {
            Tool::EndCall(_) => ToolKind::EndCall,
            Tool::TransferCall(_) => ToolKind::TransferCall,
            Tool::SendDtmf(_) => ToolKind::SendDtmf,
            Tool::Http(_) => ToolKind::Http,
            Tool::Mcp(_) => ToolKind::Mcp,
        }
    }

    /// Whether a barge-in cancels a running call of this tool.
    pub fn cancel_on_barge_in(&self) -> bool {
        matches!(self, Tool::Http(tool) if tool.cancel_on_barge_in)
    }

    /// The JSON Schema of the arguments the model passes (function tools only).
    pub fn parameters(&self) -> Option<Value> {
        Some(match self {
            Tool::EndCall(_) => serde_json::json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why the call is ending, in a few words."}
                }
            }),
            Tool::TransferCall(tool) => {
                let ids: Vec<&str> = tool.destinations.iter().map(|d| d.id.as_str()).collect();
                let described: Vec<String> = tool
                    .destinations
                    .iter()
                    .map(|d| format!("{}: {}", d.id, d.description))
                    .collect();
                serde_json::json!({
                    "type": "object",
                    "properties": {
                        "destination_id": {
                            "type": "string",
                            "enum": ids,
                            "description": format!("Where to transfer the caller. {}", described.join("; ")),
                        }
                    },
                    "required": ["destination_id"]
                })
            }
            Tool::SendDtmf(_) => serde_json::json!({
                "type": "object",
                "properties": {
                    "digits": {
                        "type": "string",
                        "pattern": "^[0-9*#]{1,32}$",
                        "description": "The keypad keys to press, in order: digits, * and #."
                    }
                },
                "required": ["digits"]
            }),
            Tool::Http(tool) => tool.parameters.clone(),
            Tool::Mcp(_) => return None,
        })
    }

    /// Checks every rule and normalises what has one spelling (phone numbers to E.164).
    /// `field` is the tool's path, e.g. `tools[2]`.
    fn normalize(&mut self, field: &str) -> Result<(), ValidationError> {
        check_identifier(&format!("{field}.name"), self.name())?;
        check_name(
            &format!("{field}.description"),
            self.description(),
            0,
            DESCRIPTION_MAX_CHARS,
        )?;
        match self {
            Tool::EndCall(_) | Tool::SendDtmf(_) => Ok(()),
            Tool::TransferCall(tool) => {
                let destinations = format!("{field}.destinations");
                if tool.destinations.is_empty() || tool.destinations.len() > MAX_DESTINATIONS {
                    return Err(ValidationError::new(
                        destinations,
                        format!("give 1 to {MAX_DESTINATIONS} destinations"),
                    ));
                }
                let mut ids = HashSet::new();
                for (index, destination) in tool.destinations.iter_mut().enumerate() {
                    let at = format!("{destinations}[{index}]");
                    destination.normalize(&at)?;
                    if !ids.insert(destination.id.clone()) {
                        return Err(ValidationError::new(
                            format!("{at}.id"),
                            "must be unique within the tool",
                        ));
                    }
                }
                Ok(())
            }
            Tool::Http(tool) => tool.validate(field),
            Tool::Mcp(tool) => tool.validate(field),
        }
    }

    /// The stored secrets this tool references.
    pub fn secret_names(&self) -> Vec<&str> {
        match self {
            Tool::Http(tool) => tool.secret_names().collect(),
            Tool::Mcp(tool) => tool
                .authorization_secret
                .iter()
                .map(String::as_str)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The kinds of tools, for records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    EndCall,
    TransferCall,
    SendDtmf,
    Http,
    Mcp,
}

/// Whether and how the model may call tools (`tool_choice` of the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the default).
    #[default]
    Auto,
    /// Tools are declared but never called.
    None,
    /// The model must call a tool in every response: rarely what a phone call wants.
    Required,
}

impl ToolChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::None => "none",
            ToolChoice::Required => "required",
        }
    }
}

/// Checks a whole list of tools (`tools[i]` paths), normalising each, and that names are unique.
pub fn normalize_tools(tools: &mut [Tool]) -> Result<(), ValidationError> {
    if tools.len() > MAX_TOOLS {
        return Err(ValidationError::new(
            "tools",
            format!("at most {MAX_TOOLS} tools"),
        ));
    }
    let mut names = HashSet::new();
    for (index, tool) in tools.iter_mut().enumerate() {
        let field = format!("tools[{index}]");
        tool.normalize(&field)?;
        if !names.insert(tool.name().to_owned()) {
            return Err(ValidationError::new(
                format!("{field}.name"),
                "must be unique within the assistant",
            ));
        }
    }
    Ok(())
}

/// A header value with `{{secret.NAME}}` references, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretTemplate<'a> {
    parts: Vec<TemplatePart<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart<'a> {
    Text(&'a str),
    Secret(&'a str),
}

impl<'a> SecretTemplate<'a> {
    const OPEN: &'static str = "{{secret.";
    const CLOSE: &'static str = "}}";

    /// Reads `value`; any `{{` that does not start a well-formed `{{secret.NAME}}` is refused,
    /// so a typo cannot send the literal reference (or half a secret) to the tenant's server.
    pub fn parse(field: &str, value: &'a str) -> Result<SecretTemplate<'a>, ValidationError> {
        let mut parts = Vec::new();
        let mut rest = value;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(TemplatePart::Text(&rest[..start]));
            }
            let after = &rest[start..];
            let Some(inner) = after.strip_prefix(Self::OPEN) else {
                return Err(ValidationError::new(
                    field,
                    "'{{' must start a secret reference such as {{secret.crm_token}}",
                ));
            };
            let Some(end) = inner.find(Self::CLOSE) else {
                return Err(ValidationError::new(
                    field,
                    "a secret reference is not closed with '}}'",
                ));
            };
            let name = &inner[..end];
            if !is_valid_name(name) {
                return Err(ValidationError::new(
                    field,
                    "a secret reference must name a secret: {{secret.NAME}} with NAME of letters, digits, '_' or '-'",
                ));
            }
            parts.push(TemplatePart::Secret(name));
            rest = &inner[end + Self::CLOSE.len()..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest));
        }
        Ok(SecretTemplate { parts })
    }

    /// The names of the secrets referenced, in order.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.parts.iter().filter_map(|part| match part {
            TemplatePart::Secret(name) => Some(*name),
            TemplatePart::Text(_) => None,
        })
    }

    /// The value with every reference replaced by `lookup(name)`; `Err(name)` for the first
    /// secret `lookup` does not have.
    pub fn render(
        &self,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<String, &'a str> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(text) => out.push_str(text),
                TemplatePart::Secret(name) => out.push_str(&lookup(name).ok_or(*name)?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(value: Value) -> Result<Vec<Tool>, String> {
        let mut tools: Vec<Tool> = serde_json::from_value(value).map_err(|err| err.to_string())?;
        normalize_tools(&mut tools).map_err(|err| err.to_string())?;
        Ok(tools)
    }

    #[test]
    fn every_kind_reads_with_its_defaults() {
        let tools = tools(serde_json::json!([
            {"type": "end_call", "name": "hang_up", "description": "When done"},
            {"type": "transfer_call", "name": "transfer", "description": "To a human",
             "destinations": [
                {"id": "sales", "number": "+1 (415) 555-0100", "description": "Sales"},
                {"id": "desk", "sip_uri": "sip:desk@pbx.example.com:5060", "description": "Desk"}
             ]},
            {"type": "send_dtmf", "name": "press", "description": "Keypad"},
            {"type": "http", "name": "lookup_order", "description": "Orders",
             "url": "https://crm.example.com/orders",
             "headers": {"Authorization": "Bearer {{secret.crm}}"}},
            {"type": "mcp", "name": "docs", "description": "Docs",
             "server_url": "https://mcp.example.com/sse", "allowed_tools": ["search"],
             "authorization_secret": "mcp_token"}
        ]))
        .unwrap();
        let Tool::TransferCall(transfer) = &tools[1] else {
            panic!()
        };
        assert_eq!(
            transfer.destinations[0].number.as_deref(),
            Some("+14155550100")
        );
        assert_eq!(
            transfer.destinations[1].target(),
            DestinationTarget::SipUri("sip:desk@pbx.example.com:5060")
        );
        let Tool::Http(http) = &tools[3] else {
            panic!()
        };
        assert_eq!(http.method, HttpMethod::Post);
        assert_eq!(http.timeout_ms, 5_000);
        assert_eq!(http.max_response_bytes, 16 * 1024);
        assert!(!http.cancel_on_barge_in);
        assert_eq!(tools[3].secret_names(), vec!["crm"]);
        assert_eq!(tools[4].secret_names(), vec!["mcp_token"]);
        assert_eq!(tools[4].parameters(), None);
        let schema = tools[1].parameters().unwrap();
        assert_eq!(
            schema["properties"]["destination_id"]["enum"],
            serde_json::json!(["sales", "desk"])
        );
    }

    #[test]
    fn broken_rules_name_the_field() {
        let cases = [
            (
                serde_json::json!([{"type": "end_call", "name": "bad name", "description": ""}]),
                "tools[0].name",
            ),
            (
                serde_json::json!([
                    {"type": "end_call", "name": "a", "description": ""},
                    {"type": "send_dtmf", "name": "a", "description": ""}
                ]),
                "tools[1].name: must be unique",
            ),
            (
                serde_json::json!([{"type": "transfer_call", "name": "t", "description": "",
                    "destinations": [{"id": "x", "description": ""}]}]),
                "tools[0].destinations[0]: give exactly one",
            ),
            (
                serde_json::json!([{"type": "transfer_call", "name": "t", "description": "",
                    "destinations": [{"id": "x", "sip_uri": "tel:123", "description": ""}]}]),
                "tools[0].destinations[0].sip_uri",
            ),
            (
                serde_json::json!([{"type": "transfer_call", "name": "t", "description": "",
                    "destinations": [
                        {"id": "x", "number": "+14155550100", "description": ""},
                        {"id": "x", "number": "+14155550101", "description": ""}]}]),
                "tools[0].destinations[1].id: must be unique",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "ftp://example.com/"}]),
                "tools[0].url",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "https://user:pw@example.com/"}]),
                "tools[0].url: must not carry credentials",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "https://example.com/", "headers": {"Webhook-Signature": "x"}}]),
                "tools[0].headers.Webhook-Signature",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "https://example.com/", "headers": {"X-Key": "{{secret.}}"}}]),
                "tools[0].headers.X-Key: a secret reference",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "https://example.com/", "headers": {"X-Key": "a\r\nb"}}]),
                "tools[0].headers.X-Key",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "https://example.com/", "parameters": {"type": "string"}}]),
                "tools[0].parameters",
            ),
            (
                serde_json::json!([{"type": "http", "name": "h", "description": "",
                    "url": "https://example.com/", "timeout_ms": 30_001}]),
                "tools[0].timeout_ms",
            ),
            (
                serde_json::json!([{"type": "mcp", "name": "m", "description": "",
                    "server_url": "https://mcp.example.com", "allowed_tools": []}]),
                "tools[0].allowed_tools",
            ),
            (
                serde_json::json!([{"type": "mcp", "name": "m", "description": "",
                    "server_url": "http://mcp.example.com", "allowed_tools": ["a"]}]),
                "tools[0].server_url",
            ),
        ];
        for (value, expected) in cases {
            let error = tools(value.clone()).unwrap_err();
            assert!(error.starts_with(expected), "{value}: {error}");
        }
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        for value in [
            serde_json::json!([{"type": "end_call", "name": "a", "description": "", "extra": 1}]),
            serde_json::json!([{"type": "launch_rocket", "name": "a", "description": ""}]),
            serde_json::json!([{"type": "transfer_call", "name": "t", "description": "",
                "destinations": [{"id": "x", "number": "+14155550100", "description": "", "n": 1}]}]),
        ] {
            assert!(tools(value.clone()).is_err(), "{value}");
        }
    }

    #[test]
    fn secret_templates_render_and_report_missing_secrets() {
        let template =
            SecretTemplate::parse("h", "Bearer {{secret.a}} and {{secret.b-2}}!").unwrap();
        assert_eq!(template.names().collect::<Vec<_>>(), vec!["a", "b-2"]);
        let rendered = template.render(|name| Some(format!("<{name}>"))).unwrap();
        assert_eq!(rendered, "Bearer <a> and <b-2>!");
        assert_eq!(
            template.render(|name| (name == "a").then(String::new)),
            Err("b-2")
        );
        assert_eq!(
            SecretTemplate::parse("h", "plain")
                .unwrap()
                .render(|_| None),
            Ok("plain".to_owned())
        );
        assert!(SecretTemplate::parse("h", "{{secret.a").is_err());
        assert!(SecretTemplate::parse("h", "{{other.a}}").is_err());
    }

    #[test]
    fn dtmf_digits_follow_the_keypad() {
        assert!(is_valid_dtmf("1#*0"));
        assert!(!is_valid_dtmf(""));
        assert!(!is_valid_dtmf("12A"));
        assert!(!is_valid_dtmf(&"1".repeat(33)));
    }
}
