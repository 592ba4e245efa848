//! A bulk job's report (`.../report`, extension) as CSV or NDJSON, and its failures grouped by error code
//! (`.../errors`). The report's columns are named once, in [`fields`]; both formats are written from them.

use keyfleet_api_types::common::Timestamp;
use keyfleet_core::{ErrorGroup, ItemStatus, JobRecord};
use keyfleet_service::jobs::ReportLine;
use serde::Serialize;
use serde_json::Value;

/// The formats of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Ndjson,
}

impl ReportFormat {
    /// The `format` parameter: `csv` (also when absent or empty) or `ndjson`.
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("") {
            "" | "csv" => Some(Self::Csv),
            "ndjson" => Some(Self::Ndjson),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }

    /// What comes before the first line: the CSV header.
    pub fn header(self) -> String {
        match self {
            Self::Csv => csv_line(COLUMNS.iter().map(|c| c.to_string())),
            Self::Ndjson => String::new(),
        }
    }

    /// One line of the report, with its line end.
    pub fn line(self, l: &ReportLine) -> String {
        let fields = fields(l);
        match self {
            Self::Csv => csv_line(fields.into_iter().map(|(_, v)| csv_value(v))),
            Self::Ndjson => {
                let object: serde_json::Map<String, Value> =
                    fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let mut s = Value::Object(object).to_string();
                s.push('\n');
                s
            }
        }
    }
}

/// The report's columns, in order.
pub const COLUMNS: [&str; 13] = [
    "key_id",
    "key_ref",
    "key_name",
    "account",
    "location",
    "action",
    "status",
    "state_before",
    "state_after",
    "attempts",
    "error_code",
    "error_message",
    "finished_at",
];

/// A line's values by column ([`COLUMNS`]); `null` where there is none.
fn fields(l: &ReportLine) -> Vec<(&'static str, Value)> {
    let r = &l.row;
    let i = &r.item;
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    let finished = matches!(i.status, ItemStatus::Succeeded | ItemStatus::Failed | ItemStatus::Skipped);
    let values = [
        Value::String(i.key_id.to_string()),
        text(&r.key_ref),
        text(&r.key_name),
        text(&r.account),
        text(&r.location),
        Value::String(l.action.clone()),
        Value::String(i.status.as_str().into()),
        text(&i.state_before),
        text(&i.state_after),
        Value::from(i.attempts),
        text(&i.last_error_code),
        text(&i.last_error_message),
        if finished { serde_json::to_value(Timestamp::from(i.updated_at)).unwrap_or(Value::Null) } else { Value::Null },
    ];
    COLUMNS.into_iter().zip(values).collect()
}

/// A CSV cell's text: strings as they are, `null` as an empty cell.
fn csv_value(v: Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// One CSV record (RFC 4180), CRLF-terminated: a cell holding a comma, quote, CR or LF is quoted, its quotes
/// doubled.
fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for (n, cell) in cells.enumerate() {
        if n > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push_str("\r\n");
    out
}

/// `GET .../errors`: a job's failures by error code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorsView {
    pub job_id: String,
    /// All failed items of the job.
    pub failed: i64,
    pub groups: Vec<ErrorGroupView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorGroupView {
    /// Empty when the failures carried no code.
    pub error_code: String,
    pub count: i64,
    /// The message of the group's first failure.
    pub error_message: Option<String>,
    /// The first few failed keys of the group (keyfleet key ids), in job order.
    pub sample_keys: Vec<String>,
}

pub fn errors(job: &JobRecord, groups: Vec<ErrorGroup>) -> ErrorsView {
    ErrorsView {
        job_id: job.id.to_string(),
        failed: job.failed,
        groups: groups
            .into_iter()
            .map(|g| ErrorGroupView {
                error_code: g.code,
                count: g.count,
                error_message: g.message,
                sample_keys: g.sample_keys.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::csv_line;

    #[test]
    fn csv_quotes_only_cells_that_need_it() {
        let cells = ["plain", "a,b", "say \"hi\"", "two\nlines", "", "cr\r"].map(String::from);
        assert_eq!(csv_line(cells.into_iter()), "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,\"cr\r\"\r\n");
    }
}
