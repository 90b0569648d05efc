//! `GET /v1/openapi.json`: the document kept in the tree, and its generator.
//!
//! [`generate`] builds the document from the route table
//! ([`super::routes`]), one `Op` per route (`describe`), and the JSON
//! Schemas of the `mote_api` types (`schemars`, feature `schema`). The server
//! answers with the committed copy, `docs/api/openapi.json`; a test checks
//! that it is what [`generate`] makes (`MOTE_BLESS=1 cargo test -p moted`
//! writes it).

use axum::http::header;
use axum::response::IntoResponse;
use mote_api::api::{
    Audit, AuditQuery, DirListing, Done, ErrorBody, Events, EventsQuery, ExecLine, ExecRequest,
    FilesQuery, Firewall, FirewallRule, Interface, KillRequest, LoginRequest, LoginResponse,
    NetworkView, PackageChange, Packages, Performance, PowerAction, Processes, RevertRequest,
    ServiceAction, Services, Sessions, SettingsHistory, SettingsStatus, SettingsValue, SystemInfo,
    VersionedSettings,
};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::transform::{transform_subschemas, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

/// The OpenAPI document, `docs/api/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../../docs/api/openapi.json");

/// Answers with [`DOCUMENT`].
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";
const BYTES: &str = "application/octet-stream";

/// What one route takes and answers, beyond its method and path.
struct Op {
    /// `operationId`.
    id: &'static str,
    /// One line.
    summary: &'static str,
    /// Query parameters: an inline object schema whose properties are the
    /// parameters.
    query: Option<Value>,
    /// Query parameters the handler ignores or sets itself.
    query_skip: &'static [&'static str],
    /// Path parameters whose schema is not a plain string.
    params: Vec<(&'static str, Value)>,
    /// Request body: content type and schema.
    body: Option<(&'static str, Value)>,
    /// What the 200 answer is.
    ok: &'static str,
    /// The 200 answer's content types and schemas.
    content: Vec<(&'static str, Value)>,
    /// Request headers the route reads: name, description, schema (all
    /// optional).
    headers: Vec<(&'static str, &'static str, Value)>,
    /// Headers of the 200 answer: name, description.
    ok_headers: Vec<(&'static str, &'static str)>,
    /// Error answers worth naming beside `4XX`/`5XX`: status, description,
    /// headers (name, description); each carries an `ErrorBody`.
    refusals: Vec<Refusal>,
}

/// An error answer an operation names: status, description, headers.
type Refusal = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

impl Op {
    fn new(id: &'static str, summary: &'static str, ok: &'static str) -> Self {
        Self {
            id,
            summary,
            query: None,
            query_skip: &[],
            params: Vec::new(),
            body: None,
            ok,
            content: Vec::new(),
            headers: Vec::new(),
            ok_headers: Vec::new(),
            refusals: Vec::new(),
        }
    }
    fn query(mut self, schema: Value) -> Self {
        self.query = Some(schema);
        self
    }
    fn param(mut self, name: &'static str, schema: Value) -> Self {
        self.params.push((name, schema));
        self
    }
    fn body(mut self, content_type: &'static str, schema: Value) -> Self {
        self.body = Some((content_type, schema));
        self
    }
    fn answer(mut self, content_type: &'static str, schema: Value) -> Self {
        self.content.push((content_type, schema));
        self
    }
    /// The 200 answer carries the settings version as `ETag`.
    fn etag(mut self) -> Self {
        self.ok_headers.push((
            "ETag",
            "The settings version, quoted (`\"7\"`): send it back in `If-Match` to change the settings only if nobody else has changed them meanwhile",
        ));
        self
    }
    /// A settings write that takes `If-Match` and answers 412 when the
    /// settings moved on.
    fn if_match(mut self) -> Self {
        self.headers.push((
            "If-Match",
            "The settings version this change was made from, as `ETag` gave it (`\"7\"`; a bare `7` is taken too; `*` or no header: whatever version is current; several, comma-separated: any of them). When the settings are at another version the change is refused with 412 and nothing changes.",
            if_match_schema(),
        ));
        self.refusals.push((
            "412",
            "The settings are no longer at the version `If-Match` names (another writer changed them); nothing was changed: re-read the settings and apply the change again",
            vec![("ETag", "The settings version now current, quoted")],
        ));
        self.etag()
    }
    /// A package upload: its signature travels in a header.
    fn signature(mut self) -> Self {
        self.headers.push((
            "mote-signature",
            "The package's minisign signature (the .minisig file) in base64; without it the package counts as unsigned, which only a node built with allow_unsigned takes",
            json!({"type": "string", "pattern": "^[A-Za-z0-9+/]+={0,2}$"}),
        ));
        self
    }
    /// A settings write whose new settings are validated (422).
    fn validated(mut self) -> Self {
        self.refusals.push((
            "422",
            "The new settings are invalid: `problems` names each key. A `roles.NAME` section is checked by its role's library, key by key. Nothing was stored or applied.",
            Vec::new(),
        ));
        self
    }
}

/// Schemas of the API types, collected for `components.schemas`.
struct Schemas(SchemaGenerator);

impl Schemas {
    /// A `$ref` to `T` (or `T`'s inline schema for plain types).
    fn of<T: JsonSchema>(&mut self) -> Value {
        let mut s = self.0.subschema_for::<T>();
        self.transform(&mut s);
        s.to_value()
    }
    /// `T`'s own schema, inline (for query types).
    fn inline<T: JsonSchema>(&mut self) -> Value {
        let mut s = T::json_schema(&mut self.0);
        self.transform(&mut s);
        s.to_value()
    }
    fn transform(&mut self, s: &mut Schema) {
        for t in self.0.transforms_mut() {
            t.transform(s);
        }
    }
}

/// OpenAPI 3.0 has no tuple `items` (an array of schemas, as schemars writes
/// `(String, u64)`): such an array's items are any of those schemas (its
/// `minItems`/`maxItems` stay).
#[derive(Clone)]
struct TupleItems;

impl Transform for TupleItems {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(items) = schema.get("items").and_then(Value::as_array).cloned() {
            schema.insert("items".into(), json!({ "anyOf": items }));
        }
        transform_subschemas(self, schema);
    }
}

/// An integer's bounds are its Rust type's: schemars gives `uint64`,
/// `uint32` and the like a `minimum` of 0 and no `maximum`, and the server
/// refuses a larger number with 400 (`?limit=` past `usize`).
#[derive(Clone)]
struct IntegerBounds;

impl Transform for IntegerBounds {
    fn transform(&mut self, schema: &mut Schema) {
        let bounds: Option<(Value, Value)> = match schema.get("format").and_then(Value::as_str) {
            Some("uint8") => Some((json!(0), json!(u8::MAX))),
            Some("uint16") => Some((json!(0), json!(u16::MAX))),
            Some("uint32") => Some((json!(0), json!(u32::MAX))),
            Some("uint64") => Some((json!(0), json!(u64::MAX))),
            Some("uint") => Some((json!(0), json!(usize::MAX))),
            Some("int8") => Some((json!(i8::MIN), json!(i8::MAX))),
            Some("int16") => Some((json!(i16::MIN), json!(i16::MAX))),
            Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
            Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
            Some("int") => Some((json!(isize::MIN), json!(isize::MAX))),
            _ => None,
        };
        if let Some((min, max)) = bounds {
            if schema.get("minimum").is_none() {
                schema.insert("minimum".into(), min);
            }
            if schema.get("maximum").is_none() {
                schema.insert("maximum".into(), max);
            }
        }
        transform_subschemas(self, schema);
    }
}

/// A query parameter is absent or a value, never null: drops the null
/// alternative schemars gives an `Option`.
fn not_null(mut schema: Value) -> Value {
    if let Some(m) = schema.as_object_mut() {
        m.remove("nullable");
        if let Some(any) = m.get("anyOf").and_then(Value::as_array) {
            let some: Vec<Value> = any
                .iter()
                .filter(|s| s["enum"] != json!([null]))
                .cloned()
                .collect();
            if let [only] = some.as_slice() {
                let only = only.clone();
                m.remove("anyOf");
                if let Some(o) = only.as_object() {
                    m.extend(o.clone());
                }
            }
        }
    }
    schema
}

/// What `If-Match` may be, as `settings::if_match` reads it: `*`, or
/// versions (`"7"` or `7`; below 10^19 here, any `u64` there),
/// comma-separated.
fn if_match_schema() -> Value {
    let tag = r#"(\*|"0*[0-9]{1,19}"|0*[0-9]{1,19})"#;
    let comma = r"[ \t]*,[ \t]*";
    json!({
        "type": "string",
        "pattern": format!("^{tag}({comma}{tag})*$"),
        "example": "\"7\"",
    })
}

fn binary() -> Value {
    json!({"type": "string", "format": "binary"})
}

fn text() -> Value {
    json!({"type": "string"})
}

/// The description of `method path`, or `None` for a route nobody described
/// (the test of the document fails then).
fn describe(method: &str, path: &str, s: &mut Schemas) -> Option<Op> {
    let settings_change = "The settings after the change, with their new version";
    Some(match (method, path) {
        ("POST", "/v1/login") => Op::new("login", "Log in: a bearer token for one hour", "A token")
            .body(JSON, s.of::<LoginRequest>())
            .answer(JSON, s.of::<LoginResponse>()),
        ("POST", "/v1/logout") => Op::new(
            "logout",
            "End this session: the token stops working",
            "Done",
        )
        .answer(JSON, s.of::<Done>()),
        ("GET", "/v1/sessions") => Op::new(
            "listSessions",
            "Live sessions (user, source, issued, expires; never a token), oldest first; a changed `system.admin_password_hash` ends every older one",
            "The sessions",
        )
        .answer(JSON, s.of::<Sessions>()),
        ("GET", "/v1/openapi.json") => Op::new(
            "openapi",
            "This document (OpenAPI 3.0)",
            "The OpenAPI document",
        )
        .answer(JSON, json!({"type": "object"})),
        ("GET", "/v1/system") => Op::new(
            "getSystem",
            "Host name, kernel, uptime, boot timeline, packages",
            "The node at a glance",
        )
        .answer(JSON, s.of::<SystemInfo>()),
        ("GET", "/v1/settings") => Op::new(
            "getSettings",
            "The whole settings tree and its version (also as `ETag`)",
            "The settings",
        )
        .etag()
        .answer(JSON, s.of::<VersionedSettings>()),
        ("PATCH", "/v1/settings") => Op::new(
            "patchSettings",
            "Change settings by an RFC 7396 merge patch: validated (422; each `roles.NAME` section by its role's library), applied by PID 1 (409 and rollback on refusal), stored as a new version; with `If-Match`, only if the settings are still at that version (412)",
            settings_change,
        )
        .if_match()
        .validated()
        .body(
            JSON,
            json!({
                "type": "object",
                "description": "An RFC 7396 JSON merge patch of NodeSettings: objects merge, null removes a key, anything else replaces.",
                "example": {"system": {"hostname": "web-2"}},
            }),
        )
        .answer(JSON, s.of::<VersionedSettings>()),
        ("GET", "/v1/settings/history") => Op::new(
            "getSettingsHistory",
            "Every stored version of the settings",
            "The versions",
        )
        .answer(JSON, s.of::<SettingsHistory>()),
        ("GET", "/v1/settings/status") => Op::new(
            "getSettingsStatus",
            "Whether the node runs the stored settings: the stored version beside the one PID 1 applied, and why not when it does not",
            "The stored and applied versions",
        )
        .answer(JSON, s.of::<SettingsStatus>()),
        ("POST", "/v1/settings/revert") => Op::new(
            "revertSettings",
            "Bring back a stored version (as a new version), validated like a patch (422); with `If-Match`, only if the settings are still at that version (412)",
            settings_change,
        )
        .if_match()
        .validated()
        .body(JSON, s.of::<RevertRequest>())
        .answer(JSON, s.of::<VersionedSettings>()),
        ("GET", "/v1/settings/{*path}") => Op::new(
            "getSettingsValue",
            "One value of the settings by dotted or slashed path",
            "The value",
        )
        .param(
            "path",
            json!({"type": "string", "description": "Key path such as `network.interfaces.eth0` or `services/web`.", "example": "system.hostname"}),
        )
        .answer(JSON, s.of::<SettingsValue>()),
        ("GET", "/v1/services") => {
            Op::new("listServices", "Every service with its state", "The services")
                .answer(JSON, s.of::<Services>())
        }
        ("POST", "/v1/services/{name}/{action}") => Op::new(
            "actOnService",
            "Start, stop or restart a service",
            "Done",
        )
        .param("action", s.of::<ServiceAction>())
        .answer(JSON, s.of::<Done>()),
        ("GET", "/v1/services/{name}/logs") => Op::new(
            "getServiceLogs",
            "A service's events (its output lines among them)",
            "The events, oldest first",
        )
        .query(s.inline::<EventsQuery>())
        .answer(JSON, s.of::<Events>()),
        ("GET", "/v1/events") => Op::new("listEvents", "Recorded events", "The events, oldest first")
            .query(s.inline::<EventsQuery>())
            .answer(JSON, s.of::<Events>()),
        ("GET", "/v1/events/follow") => Op::new(
            "followEvents",
            "Events as they happen: NDJSON, or server-sent events with `Accept: text/event-stream`",
            "A stream that lasts until the client hangs up: one Event per line (NDJSON), or one `data: EVENT` per server-sent event",
        )
        .query(s.inline::<EventsQuery>())
        .answer(NDJSON, s.of::<mote_api::api::Event>())
        .answer("text/event-stream", text()),
        ("GET", "/v1/network") => Op::new(
            "getNetwork",
            "Live links, routes and resolvers, and the configured interfaces",
            "The network",
        )
        .answer(JSON, s.of::<NetworkView>()),
        ("PUT", "/v1/network/interfaces/{name}") => Op::new(
            "putInterface",
            "Set one interface's settings (a settings change)",
            settings_change,
        )
        .body(JSON, s.of::<Interface>())
        .answer(JSON, s.of::<VersionedSettings>()),
        ("GET", "/v1/firewall") => {
            Op::new("getFirewall", "The firewall settings", "The inbound policy and rules")
                .answer(JSON, s.of::<Firewall>())
        }
        ("POST", "/v1/firewall/rules") => Op::new(
            "addFirewallRule",
            "Add a rule (a settings change)",
            settings_change,
        )
        .body(JSON, s.of::<FirewallRule>())
        .answer(JSON, s.of::<VersionedSettings>()),
        ("DELETE", "/v1/firewall/rules/{name}") => Op::new(
            "removeFirewallRule",
            "Remove a rule (a settings change)",
            settings_change,
        )
        .answer(JSON, s.of::<VersionedSettings>()),
        ("POST", "/v1/firewall/rules/{name}/{action}") => Op::new(
            "enableFirewallRule",
            "Enable or disable a rule (a settings change)",
            settings_change,
        )
        .param("action", json!({"type": "string", "enum": ["enable", "disable"]}))
        .answer(JSON, s.of::<VersionedSettings>()),
        ("GET", "/v1/processes") => Op::new("listProcesses", "Processes, from /proc", "By pid")
            .answer(JSON, s.of::<Processes>()),
        ("POST", "/v1/processes/{pid}/kill") => Op::new(
            "killProcess",
            "Send a signal to a process (not PID 1)",
            "Done",
        )
        .param("pid", json!({"type": "integer", "format": "int32", "minimum": 2}))
        .body(JSON, s.of::<KillRequest>())
        .answer(JSON, s.of::<Done>()),
        ("GET", "/v1/performance") => Op::new(
            "getPerformance",
            "CPU, memory, disks, network and per-service cgroup figures",
            "A measurement",
        )
        .answer(JSON, s.of::<Performance>()),
        ("GET", "/v1/metrics") => Op::new(
            "getMetrics",
            "The same figures as Prometheus text",
            "Prometheus text exposition format 0.0.4",
        )
        .answer("text/plain", text()),
        ("GET", "/v1/files") => Op::new(
            "getFiles",
            "List a directory (JSON) or download a regular file (raw bytes, streamed); absolute paths only; a device, pipe or socket is refused with 400",
            "A directory listing, or the file's bytes",
        )
        .query(s.inline::<FilesQuery>())
        .answer(JSON, s.of::<DirListing>())
        .answer(BYTES, binary()),
        ("PUT", "/v1/files") => Op::new(
            "putFile",
            "Upload a file (64 MiB at most, 413 beyond); absolute paths only",
            "Done",
        )
        .query(s.inline::<FilesQuery>())
        .body(BYTES, binary())
        .answer(JSON, s.of::<Done>()),
        ("POST", "/v1/exec") => Op::new(
            "exec",
            "Run a program; its output streams back as it comes",
            "NDJSON: output lines as they come, then one exit line",
        )
        .body(JSON, s.of::<ExecRequest>())
        .answer(NDJSON, s.of::<ExecLine>()),
        ("POST", "/v1/power/{action}") => Op::new(
            "power",
            "Ordered reboot or power-off",
            "Done; the node goes down shortly after",
        )
        .param("action", s.of::<PowerAction>())
        .answer(JSON, s.of::<Done>()),
        ("GET", "/v1/audit") => Op::new(
            "getAudit",
            "The audit log: every change made through the API",
            "The entries, oldest first",
        )
        .query(s.inline::<AuditQuery>())
        .answer(JSON, s.of::<Audit>()),
        ("GET", "/v1/packages") => Op::new(
            "listPackages",
            "The installed packages: the image's and those installed online, and whether the node lets unsigned ones in",
            "The packages",
        )
        .answer(JSON, s.of::<Packages>()),
        ("POST", "/v1/packages") => Op::new(
            "installPackage",
            "Install a package (the .mpkg file as the body, 64 MiB at most; its .minisig in base64 in the mote-signature header): verified against the node's trusted keys, unpacked, its settings section added with its defaults, its ports opened and its services started, as one settings change. Refused with 422 when it does not open or verify (unsigned, tampered, untrusted), 409 when it is installed already or its dependencies are not; a failed start re-applies the previous settings and removes it (409). Nothing stays of a refused package.",
            "Installed and running",
        )
        .body(BYTES, binary())
        .signature()
        .answer(JSON, s.of::<PackageChange>()),
        ("PUT", "/v1/packages/{name}") => Op::new(
            "upgradePackage",
            "Upgrade a package installed online (the .mpkg as the body, its signature as for an install): its files are replaced and its services restarted, its settings kept; a failure puts the previous version back",
            "Upgraded",
        )
        .param("name", json!({"type": "string", "minLength": 1, "example": "hello"}))
        .body(BYTES, binary())
        .signature()
        .answer(JSON, s.of::<PackageChange>()),
        ("DELETE", "/v1/packages/{name}") => Op::new(
            "removePackage",
            "Remove a package: out of the settings (its services stop, its ports close, its section goes), then its files; an image's package is only deactivated. 409 while another active package depends on it",
            "Removed",
        )
        .param("name", json!({"type": "string", "minLength": 1, "example": "hello"}))
        .answer(JSON, s.of::<PackageChange>()),
        _ => return None,
    })
    .map(|op| match path {
        // The handler sets `source` from the path.
        "/v1/services/{name}/logs" => Op {
            query_skip: &["source"],
            ..op
        },
        _ => op,
    })
}

/// The OpenAPI path of an axum path (`{*rest}` becomes `{rest}`).
pub fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// The whole document, generated from the route table and the API types.
/// Panics on a route `describe` does not know.
pub fn generate() -> Value {
    let mut s = Schemas(
        SchemaSettings::openapi3()
            .with_transform(TupleItems)
            .with_transform(IntegerBounds)
            .into_generator(),
    );
    let error = s.of::<ErrorBody>();
    let mut paths = Map::new();
    for (method, path, _) in super::routes() {
        let op = describe(method, path, &mut s)
            .unwrap_or_else(|| panic!("{method} {path} is not described in api/openapi.rs"));
        let public = super::PUBLIC.contains(&path);
        let doc_path = openapi_path(path);
        let entry = paths
            .entry(doc_path.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object");
        entry.insert(
            method.to_lowercase(),
            operation(method, &doc_path, op, public),
        );
    }
    let schemas = s.0.take_definitions(true);
    let doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mote management API (moted)",
            "version": "1",
            "description": "HTTPS on port 5986 with a self-signed certificate; clients pin its SHA-256 fingerprint. Log in with POST /v1/login, then send Authorization: Bearer TOKEN. Every answer other than 2xx carries an ErrorBody. Types: crates/mote-api/src/api.rs. Generated by moted (crates/moted/src/api/openapi.rs); do not edit by hand.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "What failed and what to do; `problems` lists each invalid setting (422)",
                    "content": {JSON: {"schema": error}},
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token from POST /v1/login (256 random bits, hex; one hour).",
                },
            },
        },
    });
    sorted(doc)
}

/// The document as committed: pretty, keys sorted, one trailing newline.
pub fn generate_text() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("JSON");
    text.push('\n');
    text
}

fn operation(method: &str, path: &str, op: Op, public: bool) -> Value {
    let mut o = Map::new();
    o.insert("operationId".into(), op.id.into());
    o.insert("summary".into(), op.summary.into());
    let mut params = Vec::new();
    for name in path_params(path) {
        let schema = op
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(text, |(_, s)| s.clone());
        params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
    }
    if let Some(q) = &op.query {
        let required: Vec<&str> = q["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = q["properties"].as_object() {
            for (name, schema) in props {
                if op.query_skip.contains(&name.as_str()) {
                    continue;
                }
                let mut schema = not_null(schema.clone());
                let description = schema.as_object_mut().and_then(|m| m.remove("description"));
                let mut p = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if let Some(d) = description {
                    p["description"] = d;
                }
                params.push(p);
            }
        }
    }
    for (name, description, schema) in &op.headers {
        params.push(json!({
            "name": name,
            "in": "header",
            "required": false,
            "description": description,
            "schema": schema,
        }));
    }
    if !params.is_empty() {
        o.insert("parameters".into(), params.into());
    }
    if let Some((ct, schema)) = op.body {
        o.insert(
            "requestBody".into(),
            json!({"required": true, "content": {ct: {"schema": schema}}}),
        );
    }
    let content: Map<String, Value> = op
        .content
        .into_iter()
        .map(|(ct, schema)| (ct.to_string(), json!({"schema": schema})))
        .collect();
    let mut responses = json!({
        "200": {"description": op.ok, "content": content},
        "4XX": {"$ref": "#/components/responses/Error"},
        "5XX": {"$ref": "#/components/responses/Error"},
    });
    if !op.ok_headers.is_empty() {
        responses["200"]["headers"] = headers(&op.ok_headers);
    }
    for (code, description, hs) in &op.refusals {
        let mut r = json!({
            "description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        });
        if !hs.is_empty() {
            r["headers"] = headers(hs);
        }
        responses[*code] = r;
    }
    if method == "POST" && path == "/v1/login" {
        responses["429"] = json!({
            "description": "Too many failed logins from this address, or the user is under attack and its lane for addresses without failures is busy: wait `Retry-After` seconds and retry (a client that logged in before and sends its `device` is not held back)",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        });
    }
    o.insert("responses".into(), responses);
    if !public {
        o.insert("security".into(), json!([{"bearer": []}]));
    }
    Value::Object(o)
}

/// A `headers` object of an answer: each a string.
fn headers(hs: &[(&str, &str)]) -> Value {
    let m: Map<String, Value> = hs
        .iter()
        .map(|(name, description)| {
            (
                name.to_string(),
                json!({"description": description, "schema": text()}),
            )
        })
        .collect();
    Value::Object(m)
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

/// Every object's keys in order, whatever serde_json's map keeps.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}
