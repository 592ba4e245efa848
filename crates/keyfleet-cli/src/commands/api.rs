//! `keyfleet api METHOD PATH [--data JSON|@FILE]`: any route, for everything without its own command.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use keyfleet_client::Method;
use serde_json::Value;

use crate::output::print_json;
use keyfleet_client::Client;

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// GET, POST, PATCH, PUT or DELETE
    pub method: String,
    /// Route, e.g. /v1/cckm/aws/templates (the /api prefix is added when missing); may carry a query
    pub path: String,
    /// Request body: JSON text, @FILE, or @- for stdin
    #[arg(long, short = 'd', value_name = "JSON|@FILE")]
    pub data: Option<String>,
}

pub(crate) async fn run(client: &Client, args: ApiArgs) -> anyhow::Result<ExitCode> {
    let method = parse_method(&args.method)?;
    let body = args.data.as_deref().map(read_data).transpose()?;
    let answer = client.request(method, &args.path, body).await?;
    if !answer.is_null() {
        print_json(&answer)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_method(method: &str) -> anyhow::Result<Method> {
    let upper = method.to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
            Method::from_bytes(upper.as_bytes()).with_context(|| format!("bad method {method:?}"))
        }
        _ => bail!("method: expected GET, POST, PUT, PATCH or DELETE, not {method:?}"),
    }
}

fn read_data(data: &str) -> anyhow::Result<Value> {
    let text = match data.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading --data from stdin")?;
            text
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => data.to_owned(),
    };
    serde_json::from_str(&text).context("--data is not valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_insensitive_and_checked() {
        assert_eq!(parse_method("patch").expect("patch"), Method::PATCH);
        assert!(parse_method("FETCH").is_err());
    }

    #[test]
    fn data_is_inline_json_or_a_file() {
        assert_eq!(read_data(r#"{"a":1}"#).expect("inline"), serde_json::json!({"a": 1}));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("body.json");
        std::fs::write(&file, r#"["x"]"#).expect("write");
        let arg = format!("@{}", file.display());
        assert_eq!(read_data(&arg).expect("file"), serde_json::json!(["x"]));
        assert!(read_data("{not json").is_err());
    }
}
