//! What the examples share: picking the model that answers their gates.
//!
//! Offline by default: a `ReplayModel` answers from the example's transcript
//! in `examples/transcripts/<name>.jsonl`, so every run is the same. With
//! `OPENAI_API_KEY` (or `OPENAI_BASE_URL` pointing at a local
//! OpenAI-compatible server such as llama.cpp, vLLM or Ollama) or
//! `ANTHROPIC_API_KEY` set, a real model answers instead, and with
//! `GUIDERAIL_RECORD=FILE` also set its answers are saved as a new
//! transcript (copy it over the example's to change the offline run).

// Each example compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use guiderail::ReplayModel;
use guiderail::llm::{Anthropic, Model, OpenAi, RecordingModel, Transcript};

/// Any error, for `main` and the examples' entry points.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the transcript of example `name` is checked in.
pub fn transcript_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/transcripts")
        .join(format!("{name}.jsonl"))
}

/// Whether the environment names a real model.
pub fn real_model_configured() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    set("OPENAI_API_KEY") || set("OPENAI_BASE_URL") || set("ANTHROPIC_API_KEY")
}

/// The model that replays example `name`'s transcript, and a line saying so.
pub fn offline_model(name: &str) -> Result<(Arc<dyn Model>, String), BoxError> {
    let path = transcript_path(name);
    let transcript = Transcript::load(&path)?;
    let source = format!(
        "offline: replaying examples/transcripts/{name}.jsonl ({} answers)",
        transcript.exchanges.len()
    );
    Ok((Arc::new(ReplayModel::new(transcript)), source))
}

/// A real model when the environment names one (OpenAI-compatible first,
/// then Anthropic), else the replayed transcript of example `name`.
pub fn model_from_env(name: &str) -> Result<(Arc<dyn Model>, String), BoxError> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("OPENAI_API_KEY") || set("OPENAI_BASE_URL") {
        return Ok((
            Arc::new(OpenAi::from_env()?),
            "OpenAI-compatible API".into(),
        ));
    }
    if set("ANTHROPIC_API_KEY") {
        return Ok((Arc::new(Anthropic::from_env()?), "Anthropic API".into()));
    }
    offline_model(name)
}

/// A model whose answers are kept, to be saved as a transcript.
type Recorder = Arc<RecordingModel<Arc<dyn Model>>>;

/// The model an example runs with, recording its answers when
/// `GUIDERAIL_RECORD=FILE` is set.
pub struct Session {
    /// The model to give the runner.
    pub model: Arc<dyn Model>,
    /// What answers, for the user: the provider, or the replayed file.
    pub source: String,
    recorder: Option<(PathBuf, Recorder)>,
}

impl Session {
    /// [`model_from_env`] for example `name`, wrapped in a recorder when
    /// `GUIDERAIL_RECORD` names a file.
    pub fn from_env(name: &str) -> Result<Self, BoxError> {
        let (model, source) = model_from_env(name)?;
        let Some(path) = std::env::var_os("GUIDERAIL_RECORD").filter(|v| !v.is_empty()) else {
            return Ok(Session {
                model,
                source,
                recorder: None,
            });
        };
        let recorder = Arc::new(RecordingModel::new(model));
        Ok(Session {
            model: recorder.clone(),
            source,
            recorder: Some((PathBuf::from(path), recorder)),
        })
    }

    /// Saves what was recorded, if recording; returns the file.
    pub fn save(&self) -> Result<Option<PathBuf>, BoxError> {
        let Some((path, recorder)) = &self.recorder else {
            return Ok(None);
        };
        recorder.transcript().save(path)?;
        Ok(Some(path.clone()))
    }
}
