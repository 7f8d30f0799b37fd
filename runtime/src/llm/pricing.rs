//! What model calls cost: a price table that providers use to fill
//! [`Usage::cost_micros`](crate::Usage).

use std::fmt;

/// The price of one model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// USD per million input (prompt) tokens.
    pub input_per_mtok: f64,
    /// USD per million output (completion) tokens.
    pub output_per_mtok: f64,
}

impl ModelPrice {
    /// What `input` and `output` tokens cost, in millionths of a US dollar,
    /// rounded up (budgets err on the safe side).
    pub fn cost_micros(&self, input: u64, output: u64) -> u64 {
        // Micro-USD per million tokens, as integers, so that list prices
        // such as $0.15 price exactly.
        let per_mtok = |usd: f64| (usd.max(0.0) * 1e6).round() as u128;
        let total = u128::from(input) * per_mtok(self.input_per_mtok)
            + u128::from(output) * per_mtok(self.output_per_mtok);
        u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// A price table: model name → [`ModelPrice`].
///
/// A model is found by its exact name, else by the longest entry that is a
/// prefix of it (`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`). A
/// model with no entry costs 0, so money budgets do not limit it: add its
/// price with [`Pricing::with`].
///
/// [`Pricing::default`] holds a few list prices as examples. Prices change:
/// check your provider's price page and set your own for budgets that
/// matter.
///
/// ```
/// use guiderail_runtime::llm::Pricing;
///
/// let pricing = Pricing::empty().with("my-model", 0.50, 1.50);
/// // 1000 input tokens at $0.50/M and 200 output tokens at $1.50/M:
/// assert_eq!(pricing.cost_micros("my-model", 1000, 200), 800);
/// assert_eq!(pricing.cost_micros("unknown", 1000, 200), 0);
/// ```
#[derive(Clone, PartialEq)]
pub struct Pricing {
    entries: Vec<(String, ModelPrice)>,
}

/// Example list prices (USD per million input / output tokens), as
/// published by the providers in 2025. Check before relying on them.
const DEFAULTS: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-haiku-4-5", 1.00, 5.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
];

impl Default for Pricing {
    /// The example prices listed in the source (a few OpenAI and Anthropic
    /// models).
    fn default() -> Self {
        let mut pricing = Pricing::empty();
        for (model, input, output) in DEFAULTS {
            pricing = pricing.with(*model, *input, *output);
        }
        pricing
    }
}

impl Pricing {
    /// A table with no prices: every call costs 0.
    pub fn empty() -> Self {
        Pricing {
            entries: Vec::new(),
        }
    }

    /// Sets the price of `model` (and of the models it is the longest
    /// prefix of), in USD per million input and output tokens.
    #[must_use]
    pub fn with(
        mut self,
        model: impl Into<String>,
        input_per_mtok: f64,
        output_per_mtok: f64,
    ) -> Self {
        let model = model.into();
        let price = ModelPrice {
            input_per_mtok,
            output_per_mtok,
        };
        match self.entries.iter_mut().find(|(m, _)| *m == model) {
            Some(entry) => entry.1 = price,
            None => self.entries.push((model, price)),
        }
        self
    }

    /// The price of `model`: its own entry, else the longest entry that is
    /// a prefix of its name.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        self.entries
            .iter()
            .filter(|(m, _)| model.starts_with(m.as_str()))
            .max_by_key(|(m, _)| m.len())
            .map(|(_, p)| *p)
    }

    /// What a call of `model` with these token counts cost, in millionths of
    /// a US dollar; 0 for a model with no price.
    pub fn cost_micros(&self, model: &str, input: u64, output: u64) -> u64 {
        self.price(model)
            .map_or(0, |p| p.cost_micros(input, output))
    }
}

impl fmt::Debug for Pricing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pricing")
            .field("models", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Pricing;

    #[test]
    fn longest_prefix_wins() {
        let p = Pricing::default();
        assert_eq!(p.price("gpt-4o-mini-2024-07-18"), p.price("gpt-4o-mini"));
        assert_ne!(p.price("gpt-4o-2024-08-06"), p.price("gpt-4o-mini"));
        // 1M input tokens of gpt-4o-mini: $0.15.
        assert_eq!(p.cost_micros("gpt-4o-mini", 1_000_000, 0), 150_000);
        assert_eq!(p.cost_micros("tiny-local", 1_000_000, 1_000_000), 0);
    }

    #[test]
    fn override_and_round_up() {
        let p = Pricing::empty().with("m", 1.0, 2.0).with("m", 0.1, 0.1);
        assert_eq!(p.cost_micros("m", 1, 0), 1);
        assert_eq!(p.cost_micros("m", 10, 10), 2);
    }
}
