//! Spans as an OTLP `ExportTraceServiceRequest`, protobuf-encoded (the message types of the
//! maintained `opentelemetry-proto` crate).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event as ProtoEvent, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as ProtoSpan, Status};
use prost::Message;

use crate::span::{Attr, Attrs, Kind, Span};

/// The instrumentation scope's name.
pub const SCOPE: &str = "warden";

/// The request body for `spans`: one resource (`service.name` = `service_name`), one scope.
pub fn request(service_name: &str, spans: &[Span]) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            kv("service.name", &Attr::Str(service_name.to_owned())),
            kv(
                "service.version",
                &Attr::Str(env!("CARGO_PKG_VERSION").to_owned()),
            ),
        ],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans: spans.iter().map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// [`request`], protobuf-encoded.
pub fn encode(service_name: &str, spans: &[Span]) -> Vec<u8> {
    request(service_name, spans).encode_to_vec()
}

fn span(s: &Span) -> ProtoSpan {
    ProtoSpan {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        trace_state: s.trace_state.clone().unwrap_or_default(),
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: s.name.clone(),
        kind: match s.kind {
            Kind::Internal => SpanKind::Internal,
            Kind::Client => SpanKind::Client,
        } as i32,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.end_ns,
        attributes: attrs(&s.attrs),
        events: s
            .events
            .iter()
            .map(|e| ProtoEvent {
                time_unix_nano: e.time_ns,
                name: e.name.clone(),
                attributes: attrs(&e.attrs),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: Some(match &s.error {
            Some(message) => Status {
                message: message.clone(),
                code: StatusCode::Error as i32,
            },
            None => Status {
                message: String::new(),
                code: StatusCode::Unset as i32,
            },
        }),
        ..Default::default()
    }
}

fn attrs(a: &Attrs) -> Vec<KeyValue> {
    a.0.iter().map(|(k, v)| kv(k, v)).collect()
}

fn kv(key: &str, value: &Attr) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(any(value)),
        ..Default::default()
    }
}

fn any(value: &Attr) -> AnyValue {
    AnyValue {
        value: Some(match value {
            Attr::Str(s) => AnyValueKind::StringValue(s.clone()),
            Attr::Int(n) => AnyValueKind::IntValue(*n),
            Attr::Bool(b) => AnyValueKind::BoolValue(*b),
            Attr::List(items) => AnyValueKind::ArrayValue(ArrayValue {
                values: items
                    .iter()
                    .map(|s| AnyValue {
                        value: Some(AnyValueKind::StringValue(s.clone())),
                    })
                    .collect(),
            }),
        }),
    }
}
