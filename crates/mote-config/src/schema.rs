//! The JSON Schema of the settings values whose serde form is written by
//! hand ([`crate::parse`]), as strict as their parsers: moted's OpenAPI
//! document promises that what the schema allows is taken (issue 17).
//!
//! The patterns follow the parsers they stand for, not the RFCs:
//! networks are parsed by `ipnet`, whose parser takes leading zeros
//! (`010.0.0.1/08`) and a `::` that stands for no group at all
//! (`1:2:3:4:5:6:7::8/64`); the patterns take exactly that. Each has a
//! property test: whatever matches it parses.

/// One group of an IPv6 address.
const H16: &str = "[0-9A-Fa-f]{1,4}";

/// An IPv4 address as `ipnet` parses it: four decimal octets below 256,
/// up to three digits each (leading zeros taken).
fn ipv4_addr() -> String {
    let octet = "(25[0-5]|2[0-4][0-9]|[01][0-9]{2}|[0-9]{1,2})";
    format!(r"{octet}(\.{octet}){{3}}")
}

/// An IPv6 address as `ipnet` parses it: eight groups (the last two may
/// be an IPv4 address), or groups before and after one `::` that stands
/// for zero or more groups.
fn ipv6_addr() -> String {
    let v4 = ipv4_addr();
    let mut alternatives = vec![format!("({H16}:){{7}}{H16}"), format!("({H16}:){{6}}{v4}")];
    for head in 0..=7usize {
        let room = 8 - head;
        let before = match head {
            0 => String::new(),
            1 => H16.to_string(),
            n => format!("({H16}:){{{}}}{H16}", n - 1),
        };
        let mut after = vec![format!("({H16}:){{0,{}}}{H16}", room - 1)];
        if room >= 2 {
            after.push(format!("({H16}:){{0,{}}}{v4}", room - 2));
        }
        alternatives.push(format!("{before}::({})?", after.join("|")));
    }
    format!("({})", alternatives.join("|"))
}

/// An IPv4 network, `ADDRESS/PREFIX` with a prefix of at most two digits
/// up to 32 (what `ipnet::Ipv4Net` parses), unanchored.
pub(crate) fn ipv4_net() -> String {
    format!("{}/(3[0-2]|[0-2]?[0-9])", ipv4_addr())
}

/// An IPv6 network, `ADDRESS/PREFIX` with a prefix of at most three
/// digits up to 128 (what `ipnet::Ipv6Net` parses), unanchored.
pub(crate) fn ipv6_net() -> String {
    format!("{}/(12[0-8]|1[01][0-9]|0?[0-9]{{1,2}})", ipv6_addr())
}

/// `text` as a whole-string pattern.
#[cfg_attr(not(feature = "schema"), allow(dead_code))]
fn anchored(text: &str) -> String {
    format!("^({text})$")
}

/// `Ipv4Mode`: `dhcp`, `off` or a network.
#[cfg_attr(not(feature = "schema"), allow(dead_code))]
pub(crate) fn ipv4_mode() -> String {
    format!("dhcp|off|{}", ipv4_net())
}

/// `Ipv6Mode`: `slaac`, `off` or a network.
#[cfg_attr(not(feature = "schema"), allow(dead_code))]
pub(crate) fn ipv6_mode() -> String {
    format!("slaac|off|{}", ipv6_net())
}

/// `ipnet::IpNet`: an IPv4 or IPv6 network.
#[cfg_attr(not(feature = "schema"), allow(dead_code))]
pub(crate) fn ip_net() -> String {
    format!("{}|{}", ipv4_net(), ipv6_net())
}

#[cfg(feature = "schema")]
mod json {
    use std::borrow::Cow;

    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use serde_json::{json, Value};

    use super::{anchored, ip_net, ipv4_mode, ipv4_net, ipv6_mode, ipv6_net};
    use crate::settings::{Ipv4Mode, Ipv6Mode};

    impl JsonSchema for Ipv4Mode {
        fn schema_name() -> Cow<'static, str> {
            "Ipv4Mode".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "How an interface gets its IPv4 address: `dhcp`, `off` or a static `address/prefix`.",
                "type": "string",
                "pattern": anchored(&ipv4_mode()),
                "examples": ["dhcp", "off", "10.0.0.5/24"],
            })
        }
    }

    impl JsonSchema for Ipv6Mode {
        fn schema_name() -> Cow<'static, str> {
            "Ipv6Mode".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "How an interface gets its IPv6 address: `slaac`, `off` or a static `address/prefix`.",
                "type": "string",
                "pattern": anchored(&ipv6_mode()),
                "examples": ["slaac", "off", "fd00::5/64"],
            })
        }
    }

    /// `FirewallRule::source`: a network, or null (any source).
    pub(crate) fn optional_ip_net(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "null"],
            "pattern": anchored(&ip_net()),
            "examples": ["192.0.2.0/24", "2001:db8::/32"],
        })
    }

    /// `Interface::dns`: IPv4 and IPv6 addresses.
    pub(crate) fn ip_addrs(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "array",
            "items": {
                "type": "string",
                "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
            },
            "examples": [["192.0.2.53", "2001:db8::53"]],
        })
    }

    /// `Interface`: a gateway only beside a static address of its family
    /// (`gateway4` with an `ipv4` network, `gateway6` with an `ipv6` one),
    /// as [`crate::NodeSettings::validate`] has it.
    pub(crate) fn gateway_needs_static(schema: &mut Schema) {
        let rule = |gateway: &str, mode: &str, net: String| -> Value {
            json!({"anyOf": [
                {"properties": {gateway: {"nullable": true, "enum": [null]}}},
                {"required": [mode], "properties": {mode: {"pattern": anchored(&net)}}},
            ]})
        };
        schema.insert(
            "allOf".into(),
            json!([
                rule("gateway4", "ipv4", ipv4_net()),
                rule("gateway6", "ipv6", ipv6_net()),
            ]),
        );
    }
}

#[cfg(feature = "schema")]
pub(crate) use json::{gateway_needs_static, ip_addrs, optional_ip_net};

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::string::string_regex;

    use super::*;

    fn matching(pattern: String) -> impl Strategy<Value = String> {
        string_regex(&pattern).expect("a pattern proptest can generate from")
    }

    proptest! {
        #[test]
        fn what_the_ipv4_pattern_takes_parses(s in matching(ipv4_mode())) {
            prop_assert!(s.parse::<crate::Ipv4Mode>().is_ok(), "{s:?}");
        }

        #[test]
        fn what_the_ipv6_pattern_takes_parses(s in matching(ipv6_mode())) {
            prop_assert!(s.parse::<crate::Ipv6Mode>().is_ok(), "{s:?}");
        }

        #[test]
        fn what_the_network_pattern_takes_parses(s in matching(ip_net())) {
            prop_assert!(s.parse::<ipnet::IpNet>().is_ok(), "{s:?}");
        }
    }

    #[test]
    fn ipnet_takes_the_examples_and_refuses_the_counter_examples() {
        for good in ["dhcp", "off", "10.0.0.5/24", "010.0.0.1/08", "0.0.0.0/0"] {
            assert!(good.parse::<crate::Ipv4Mode>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "10.0.0.5",
            "10.0.0.256/24",
            "10.0.0.5/33",
            "1.2.3.4/024",
        ] {
            assert!(bad.parse::<crate::Ipv4Mode>().is_err(), "{bad}");
        }
        for good in [
            "slaac",
            "::/0",
            "fd00::5/64",
            "1:2:3:4:5:6:7:8/128",
            "1:2:3:4:5:6:7::8/064",
            "::ffff:1.2.3.4/96",
            "1:2:3:4:5:6:1.2.3.4/1",
        ] {
            assert!(good.parse::<crate::Ipv6Mode>().is_ok(), "{good}");
        }
        for bad in ["", "::", "fd00::5/129", "1::2::3/64", "12345::/8", ":1::/8"] {
            assert!(bad.parse::<crate::Ipv6Mode>().is_err(), "{bad}");
        }
    }
}
