//! Versions Kafka 4.x added to messages whose definitions here predate it.
//!
//! The message definitions beside the checkout were taken before Apache Kafka 4.0, which made
//! `transaction.version` 2 (KIP-890 part 2) production-ready. Three of its versions are missing
//! or still marked unstable there, and a Kafka 4.x client that finds the feature finalized needs
//! all three, so Potok cannot finalize the feature without them:
//!
//! - ProduceRequest/ProduceResponse v12: the same schema as v11; a transactional produce at v12
//!   adds its partition to the transaction implicitly (the client no longer sends
//!   AddPartitionsToTxn).
//! - TxnOffsetCommitRequest/TxnOffsetCommitResponse v5: the same schema as v4; it adds the
//!   group's `__consumer_offsets` partition implicitly (no AddOffsetsToTxn).
//! - EndTxnRequest v5 (its fields are in the definitions already) is stable in Kafka 4.0.
//!
//! Each entry here only extends a message's valid range by versions whose schema equals the
//! previous version's, which [`apply`] checks: no field of the message may end at a version
//! below the new maximum (a field that ends changes the schema). The schemas were compared with
//! the generated ones of kafka-clients 4.4.0 (`ProduceRequestData.SCHEMA_11` equals `SCHEMA_12`,
//! `TxnOffsetCommitRequestData.SCHEMA_4` equals `SCHEMA_5`, and likewise for the responses).
//! When the definitions are updated to Kafka 4.x, these entries become no-ops and are removed.

use anyhow::{bail, Result};

use crate::spec::{Range, Spec, StructDef};

/// One message's versions as Kafka 4.x defines them.
struct Overlay {
    message: &'static str,
    /// The highest valid version in Kafka 4.x (at least the definition's).
    max_version: i16,
    /// Whether Kafka 4.x lists the latest version as stable.
    stable: bool,
}

const OVERLAYS: &[Overlay] = &[
    Overlay {
        message: "ProduceRequest",
        max_version: 12,
        stable: true,
    },
    Overlay {
        message: "ProduceResponse",
        max_version: 12,
        stable: true,
    },
    Overlay {
        message: "TxnOffsetCommitRequest",
        max_version: 5,
        stable: true,
    },
    Overlay {
        message: "TxnOffsetCommitResponse",
        max_version: 5,
        stable: true,
    },
    Overlay {
        message: "EndTxnRequest",
        max_version: 5,
        stable: true,
    },
];

/// Applies [`OVERLAYS`] to the parsed definitions.
pub(crate) fn apply(specs: &mut [Spec]) -> Result<()> {
    for o in OVERLAYS {
        let Some(spec) = specs.iter_mut().find(|s| s.name == o.message) else {
            bail!("overlay for {}, which is not defined", o.message);
        };
        apply_one(spec, o)?;
    }
    Ok(())
}

fn apply_one(spec: &mut Spec, o: &Overlay) -> Result<()> {
    let old = spec.valid.hi;
    if o.max_version < old {
        bail!(
            "overlay for {} would shrink its versions from {old} to {}",
            o.message,
            o.max_version
        );
    }
    if o.max_version > old {
        if let Some((s, f)) = field_ending_before(&spec.structs, o.max_version) {
            bail!(
                "overlay for {}: field {s}.{f} ends before v{}, so v{} may not share the schema of v{old}",
                o.message,
                o.max_version,
                o.max_version
            );
        }
        spec.valid = Range {
            lo: spec.valid.lo,
            hi: o.max_version,
        };
        spec.structs[0].about = format!(
            "Kafka `{}` (versions {}-{}).",
            spec.name, spec.valid.lo, spec.valid.hi
        );
    }
    if o.stable {
        spec.unstable = false;
    }
    Ok(())
}

/// A field (struct, field) whose versions, nullability or tagging stop below `max`.
fn field_ending_before(structs: &[StructDef], max: i16) -> Option<(String, String)> {
    structs.iter().find_map(|s| {
        s.fields.iter().find_map(|f| {
            [f.versions, f.nullable, f.tagged]
                .into_iter()
                .chain(f.flex_override)
                .any(|r| !r.empty() && r.hi < max)
                .then(|| (s.name.clone(), f.name.clone()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec_text;

    const PRODUCE_V12: Overlay = Overlay {
        message: "ProduceRequest",
        max_version: 12,
        stable: true,
    };

    #[test]
    fn extends_a_message_whose_fields_all_continue() {
        let mut spec = parse_spec_text(
            r#"{"apiKey": 0, "type": "request", "name": "ProduceRequest", "validVersions": "0-11",
               "flexibleVersions": "9+", "latestVersionUnstable": true,
               "fields": [{"name": "Acks", "type": "int16", "versions": "0+", "about": "a"}]}"#,
        )
        .unwrap();
        apply_one(&mut spec, &PRODUCE_V12).unwrap();
        assert_eq!((spec.valid.lo, spec.valid.hi), (0, 12));
        assert!(!spec.unstable);
        assert!(spec.structs[0].about.contains("0-12"));
    }

    #[test]
    fn refuses_to_extend_past_a_field_that_ends() {
        let mut spec = parse_spec_text(
            r#"{"apiKey": 0, "type": "request", "name": "ProduceRequest", "validVersions": "0-11",
               "fields": [{"name": "Old", "type": "int16", "versions": "0-11", "about": "a"}]}"#,
        )
        .unwrap();
        let e = apply_one(&mut spec, &PRODUCE_V12).unwrap_err().to_string();
        assert!(e.contains("ProduceRequest.Old"), "{e}");
        assert_eq!(spec.valid.hi, 11);
    }

    #[test]
    fn refuses_to_shrink_a_message() {
        let mut spec = parse_spec_text(
            r#"{"apiKey": 0, "type": "request", "name": "ProduceRequest", "validVersions": "0-13",
               "fields": []}"#,
        )
        .unwrap();
        assert!(apply_one(&mut spec, &PRODUCE_V12).is_err());
    }
}
