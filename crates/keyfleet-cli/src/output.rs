//! What the CLI prints: pretty JSON, compact tables and the rows of each resource's table.

use std::io::Write;

use keyfleet_api_types::Timestamp;
use keyfleet_api_types::aws::{AwsConnectionView, AwsKeyView, KmsView};
use keyfleet_api_types::bulkjob::BulkJobView;
use serde::Serialize;

/// How a read command prints: `-o table` (the default of lists), `-o json` (the API's JSON, stable for `jq`),
/// `-o csv` (RFC 4180, the table's columns with a header line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

/// `-o table|json|csv` of every read command; `--json` is `-o json`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputFlags {
    /// Output format: table, json (the API's JSON) or csv
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// The same as `-o json`
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl OutputFlags {
    /// The format asked for, else `default`.
    pub fn or(&self, default: Format) -> Format {
        if self.json { Format::Json } else { self.format.unwrap_or(default) }
    }
}

/// Prints one page of a list in `format`: the server's JSON `list`, or `rows` under `headers` as a table or
/// CSV (then `showing 11-20 of 42` on stderr when the page is not all there is).
pub fn print_list<T: Serialize + ?Sized>(
    format: Format,
    list: &T,
    headers: &[&str],
    rows: &[Vec<String>],
    (skip, total): (u64, u64),
) -> anyhow::Result<()> {
    match format {
        Format::Json => return print_json(list),
        Format::Table => print_table(headers, rows)?,
        Format::Csv => std::io::stdout().lock().write_all(render_csv(headers, rows).as_bytes())?,
    }
    note_paging(skip, rows.len(), total);
    Ok(())
}

/// RFC 4180: a header line, then one line per row, CRLF line ends; a cell with a comma, quote or line break is
/// quoted, its quotes doubled.
pub fn render_csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |c: &str| {
        if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.to_owned() }
    };
    let line = |cells: Vec<String>| cells.join(",") + "\r\n";
    let mut out = line(headers.iter().map(|h| cell(h)).collect());
    for row in rows {
        out.push_str(&line(row.iter().map(|c| cell(c)).collect()));
    }
    out
}

/// Prints `value` as indented JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints one line on stdout; an error (not a panic, as `println!` would) when stdout is a closed pipe.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    Ok(())
}

/// Prints a table on stdout.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(render_table(headers, rows).as_bytes())?;
    Ok(())
}

/// Left-aligned columns two spaces apart, headers first, no trailing spaces.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(width) => *width = (*width).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut text = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `2023-02-10T08:19:48Z`: seconds are enough in a table.
pub fn short_time(t: &Timestamp) -> String {
    t.0.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub const BULKJOB_HEADERS: &[&str] = &["ID", "OPERATION", "STATUS", "KEYS", "DONE", "CREATED"];

pub fn bulkjob_row(job: &BulkJobView) -> Vec<String> {
    vec![
        job.id.clone(),
        job.operation.clone(),
        job.overall_status.clone(),
        job.keys.len().to_string(),
        job.detailed_status.len().to_string(),
        short_time(&job.created_at),
    ]
}

pub const KEY_HEADERS: &[&str] = &["ID", "REGION", "KEYID", "STATE", "ALIAS"];

pub fn key_row(key: &AwsKeyView) -> Vec<String> {
    vec![
        key.id.clone(),
        key.region.clone(),
        key.aws_param.key_id.clone(),
        key.aws_param.key_state.clone(),
        key.aws_param.alias.join(","),
    ]
}

pub const CONNECTION_HEADERS: &[&str] = &["ID", "NAME", "ACCESS KEY ID", "REGION", "ENDPOINT"];

pub fn connection_row(c: &AwsConnectionView) -> Vec<String> {
    vec![
        c.id.clone(),
        c.name.clone(),
        c.access_key_id.clone(),
        c.aws_region.clone(),
        c.endpoint_url.clone().unwrap_or_default(),
    ]
}

pub const KMS_HEADERS: &[&str] = &["ID", "NAME", "ACCOUNT", "CONNECTION", "REGIONS"];

pub fn kms_row(k: &KmsView) -> Vec<String> {
    vec![k.id.clone(), k.name.clone(), k.account_id.clone(), k.connection.clone(), k.regions.join(",")]
}

/// `showing 11-20 of 42` on stderr when a list is one page of more, so stdout stays just the table.
pub fn note_paging(skip: u64, shown: usize, total: u64) {
    if shown as u64 != total {
        let first = if shown == 0 { skip } else { skip + 1 };
        eprintln!("showing {first}-{} of {total}", skip + shown as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["a1".to_owned(), "enablekey".to_owned(), "x".to_owned()],
            vec!["b".to_owned(), "disablekey".to_owned(), String::new()],
        ];
        assert_eq!(
            render_table(&["ID", "OPERATION", "STATUS"], &rows),
            "ID  OPERATION   STATUS\na1  enablekey   x\nb   disablekey\n"
        );
        assert_eq!(render_table(&["ID"], &[]), "ID\n");
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let rows = vec![vec!["a".to_owned(), "x,y".to_owned(), "say \"hi\"".to_owned(), "two\nlines".to_owned()]];
        assert_eq!(
            render_csv(&["ID", "ALIAS", "NOTE", "TEXT"], &rows),
            "ID,ALIAS,NOTE,TEXT\r\na,\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
    }

    #[test]
    fn bulkjob_and_key_rows() {
        let job: BulkJobView = serde_json::from_value(json!({
            "id": "e612b64f", "uri": "kylo:kylo:cckm:bulkjob:e612b64f",
            "account": "kylo:kylo:admin:accounts:kylo",
            "createdAt": "2023-02-10T08:19:48.558869Z", "updatedAt": "2023-02-10T08:19:48.970377Z",
            "overall_status": "in_progress", "detailed_status": {"k1": "Success"}, "abort": false,
            "cloud": "aws", "keys": ["k1", "k2"], "operation": "enablekey"
        }))
        .expect("job");
        assert_eq!(bulkjob_row(&job), vec!["e612b64f", "enablekey", "in_progress", "2", "1", "2023-02-10T08:19:48Z"]);

        let key: AwsKeyView = serde_json::from_value(json!({
            "id": "c1", "uri": "kylo:kylo:cckm:aws-key:c1", "account": "kylo:kylo:admin:accounts:kylo",
            "createdAt": "2023-02-10T08:19:48.558869Z", "updatedAt": "2023-02-10T08:19:48.558869Z",
            "kms_id": "m", "kms": "prod", "region": "eu-west-1", "cloud_name": "aws",
            "key_material_origin": "AWS_KMS", "synced_at": "2023-02-10T08:19:48.558869Z", "gone": false,
            "labels": {}, "aws_param": {
                "KeyID": "1234abcd", "Arn": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd",
                "AWSAccountId": "111122223333", "KeyState": "Enabled", "Enabled": true,
                "Description": "", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS",
                "KeyManager": "CUSTOMER", "MultiRegion": false, "Policy": "{}", "Tags": [],
                "Alias": ["alias/a", "alias/b"]
            }
        }))
        .expect("key");
        assert_eq!(key_row(&key), vec!["c1", "eu-west-1", "1234abcd", "Enabled", "alias/a,alias/b"]);
    }
}
