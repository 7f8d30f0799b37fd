//! A hand-written gate shared by the provider, fixture and decode tests.

#![allow(dead_code)]

use std::sync::OnceLock;

use guiderail_runtime::llm::{CallOptions, Encoding, Message, ModelRequest};
use guiderail_runtime::{GateMoves, GateSpec, MoveInfo, MoveShape};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The moves out of `Classify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum ClassifyNext {
    /// Refund the order.
    Refund { order_id: u64 },
    /// Hand the ticket to a human.
    Escalate { reason: String },
    /// Nothing to do.
    Done,
}

impl GateMoves for ClassifyNext {
    const MACHINE: &'static str = "Support";
    const GATE: &'static str = "Classify";
    const GATE_DOC: &'static str = "Read the ticket and pick what happens next.";
    const MOVES: &'static [MoveInfo] = &[
        MoveInfo {
            name: "Refund",
            doc: "Refund the order.",
            shape: MoveShape::Struct,
        },
        MoveInfo {
            name: "Escalate",
            doc: "Hand the ticket to a human.",
            shape: MoveShape::Struct,
        },
        MoveInfo {
            name: "Done",
            doc: "Nothing to do.",
            shape: MoveShape::Unit,
        },
    ];

    fn spec() -> &'static GateSpec {
        static S: OnceLock<GateSpec> = OnceLock::new();
        S.get_or_init(GateSpec::build::<Self>)
    }
}

/// A payload with optional and defaulted fields (a second gate, `Plan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shipment {
    pub order_id: u64,
    pub note: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub level: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum Wide {
    Ship(Shipment),
    Wait(u64),
}

impl GateMoves for Wide {
    const MACHINE: &'static str = "Shop";
    const GATE: &'static str = "Plan";
    const GATE_DOC: &'static str = "";
    const MOVES: &'static [MoveInfo] = &[
        MoveInfo {
            name: "Ship",
            doc: "Ship it.",
            shape: MoveShape::Newtype,
        },
        MoveInfo {
            name: "Wait",
            doc: "Wait this many seconds.",
            shape: MoveShape::Newtype,
        },
    ];

    fn spec() -> &'static GateSpec {
        static S: OnceLock<GateSpec> = OnceLock::new();
        S.get_or_init(GateSpec::build::<Self>)
    }
}

/// A request at the `Classify` gate in `encoding`.
pub fn request(encoding: Encoding) -> ModelRequest {
    request_at(ClassifyNext::spec(), encoding)
}

/// A request at `gate` in `encoding`.
pub fn request_at(gate: &'static GateSpec, encoding: Encoding) -> ModelRequest {
    ModelRequest {
        gate,
        messages: vec![
            Message::System {
                content: "You are the decision point `Classify`.".into(),
            },
            Message::User {
                content: "Ticket: my order 42 arrived broken, please refund it.".into(),
            },
        ],
        options: CallOptions {
            model: None,
            temperature: Some(0.0),
            max_output_tokens: Some(256),
            encoding,
        },
    }
}
