//! Records as OTLP logs (`ExportLogsServiceRequest`, protobuf, the maintained
//! `opentelemetry-proto` message types): one `LogRecord` per ledger record, its body the
//! record's JSON line exactly (so the copy verifies), its time the record's time, with the
//! attributes `warden.seq`, `warden.kind`, `warden.session` (when the record has one) and
//! `warden.hash`; the resource carries `service.name = warden` and `warden.ledger`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use crate::batch::{Batch, Item};

/// The instrumentation scope's name.
pub const SCOPE: &str = "warden.ledger";

/// The request for `batch`, from the ledger `ledger` (its id).
pub fn request(ledger: &str, batch: &Batch) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("warden")),
                    kv("warden.ledger", string(ledger)),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                log_records: batch.items.iter().map(log_record).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// [`request`], protobuf-encoded.
pub fn encode(ledger: &str, batch: &Batch) -> Vec<u8> {
    request(ledger, batch).encode_to_vec()
}

fn log_record(item: &Item) -> LogRecord {
    let mut attributes = vec![
        kv(
            "warden.seq",
            AnyValueKind::IntValue(i64::try_from(item.seq).unwrap_or(i64::MAX)),
        ),
        kv("warden.kind", string(item.kind)),
    ];
    if let Some(s) = &item.session {
        attributes.push(kv("warden.session", string(s)));
    }
    attributes.push(kv("warden.hash", string(&item.hash)));
    LogRecord {
        time_unix_nano: item.time_ns,
        observed_time_unix_nano: item.time_ns,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".to_owned(),
        body: Some(AnyValue {
            value: Some(string(&item.line)),
        }),
        attributes,
        ..Default::default()
    }
}

fn string(s: &str) -> AnyValueKind {
    AnyValueKind::StringValue(s.to_owned())
}

fn kv(key: &str, value: AnyValueKind) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
