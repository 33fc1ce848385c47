//! `failoverd report <id>`: a run's report (`GET /v1/runs/{id}/report`) as the Markdown document
//! the API renders (`--output text`, the default: ready for a change ticket) or as JSON.

use super::{encode_path, runtime, stdout, ApiArgs, Output};
use super::{EXIT_FAILURE, EXIT_INVALID, EXIT_OK, EXIT_REFUSED};
use crate::client::{ApiClient, ClientError};

/// The media type of the Markdown report.
pub const MARKDOWN: &str = "text/markdown";

/// The report of run `id`: Markdown text, or pretty-printed JSON.
pub async fn fetch(client: &ApiClient, id: &str, output: Output) -> Result<String, ClientError> {
    let path = format!("/v1/runs/{}/report", encode_path(id));
    match output {
        Output::Text => client.get_text(&path, MARKDOWN).await,
        Output::Json => {
            let value: serde_json::Value = client.get(&path).await?;
            Ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
            ))
        }
    }
}

pub fn command(id: &str, api: &ApiArgs) -> u8 {
    let client = match api.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match rt.block_on(fetch(&client, id, api.output)) {
        Ok(text) => stdout::exit_code(stdout::print(&text), EXIT_OK),
        Err(e @ ClientError::Api { .. }) => {
            eprintln!("{e}");
            EXIT_REFUSED
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILURE
        }
    }
}
