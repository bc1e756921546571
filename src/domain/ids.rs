//! Typed ids. Every record's id is a MongoDB ObjectId, and tenant isolation rests on passing the
//! tenant's id to every read and write of tenant data; with one type per kind of id, swapping
//! `(tenant_id, call_id)` or passing an assistant's id where a call's is expected does not
//! compile.
//!
//! Each id serializes exactly as the ObjectId it wraps (`#[serde(transparent)]`), so stored
//! documents and the JSON shapes are unchanged, and converts into [`Bson`] for filters.
//!
//! Swapping a tenant's id and a call's id is a type error:
//!
//! ```compile_fail
//! # use voxbridge::domain::ids::{CallId, TenantId};
//! # use voxbridge::storage::call_slots::CallSlots;
//! # async fn free(slots: CallSlots) {
//! let (tenant, call) = (TenantId::new(), CallId::new());
//! slots.release(call, tenant).await; // (tenant, call) in that order only
//! # }
//! ```
//!
//! ```no_run
//! # use voxbridge::domain::ids::{CallId, TenantId};
//! # use voxbridge::storage::call_slots::CallSlots;
//! # async fn free(slots: CallSlots) {
//! let (tenant, call) = (TenantId::new(), CallId::new());
//! slots.release(tenant, call).await.unwrap();
//! # }
//! ```

use std::fmt;
use std::str::FromStr;

use bson::Bson;
use bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

/// A string that is not 24 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not an id (24 hexadecimal digits)")]
pub struct ParseIdError;

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(ObjectId);

        impl $name {
            /// A new, unique id.
            #[allow(clippy::new_without_default)] // a default id would be a random one
            pub fn new() -> Self {
                Self(ObjectId::new())
            }

            /// The id stored as this ObjectId.
            pub fn from_object_id(id: ObjectId) -> Self {
                Self(id)
            }

            pub fn object_id(self) -> ObjectId {
                self.0
            }

            /// 24 lowercase hexadecimal digits, as ids appear in the API.
            pub fn to_hex(self) -> String {
                self.0.to_hex()
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            /// Parses the 24 hexadecimal digits of an id.
            fn from_str(text: &str) -> Result<Self, ParseIdError> {
                ObjectId::parse_str(text).map(Self).map_err(|_| ParseIdError)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$name> for Bson {
            fn from(id: $name) -> Bson {
                Bson::ObjectId(id.0)
            }
        }
    };
}

object_id!(
    /// A tenant (a `users` document).
    TenantId
);
object_id!(
    /// A tenant API key.
    ApiKeyId
);
object_id!(
    /// An assistant.
    AssistantId
);
object_id!(
    /// A phone number registered by a tenant.
    PhoneNumberId
);
object_id!(
    /// A call: its call log, its concurrency slot, its live session.
    CallId
);
object_id!(
    /// A tenant's webhook endpoint.
    WebhookEndpointId
);
object_id!(
    /// One delivery of an event to a webhook endpoint (`webhook_deliveries`).
    WebhookDeliveryId
);
object_id!(
    /// A FreJun webhook that matched no call, kept for diagnosis (`frejun_events`).
    FrejunEventId
);
object_id!(
    /// A live-control request addressed to the instance bridging a call (`call_commands`).
    CommandId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_store_and_print_as_the_object_id_they_wrap() {
        let raw = ObjectId::new();
        let call = CallId::from_object_id(raw);
        assert_eq!(call.object_id(), raw);
        assert_eq!(call.to_hex(), raw.to_hex());
        assert_eq!(call.to_string(), raw.to_hex());
        assert_eq!(Bson::from(call), Bson::ObjectId(raw));
        let stored = bson::to_bson(&call).unwrap();
        assert_eq!(stored, Bson::ObjectId(raw));
        assert_eq!(bson::from_bson::<CallId>(stored).unwrap(), call);
        assert_eq!(
            serde_json::to_value(call).unwrap(),
            serde_json::to_value(raw).unwrap()
        );
    }

    #[test]
    fn ids_parse_from_hex_only() {
        let id = TenantId::new();
        assert_eq!(id.to_hex().parse::<TenantId>(), Ok(id));
        for bad in ["", "xyz", "0123", &format!("{}0", id.to_hex())] {
            assert_eq!(bad.parse::<TenantId>(), Err(ParseIdError), "{bad:?}");
        }
    }
}
