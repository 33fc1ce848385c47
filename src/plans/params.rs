//! Plan parameters: the request's `params` object, validated once into typed values. Every error
//! names the field (`params.<field>`), and keys a plan does not declare are refused, so a typo
//! never silently changes what a failover does.

use serde_json::{Map, Value};

use crate::engine::PlanError;
use crate::topology::RegionPair;

/// The parameter naming the region a plan moves something to.
pub const TARGET_REGION: &str = "target_region";

/// An error naming `params.<field>`.
pub fn bad(field: &str, message: impl Into<String>) -> PlanError {
    PlanError::BadParams {
        field: format!("params.{field}"),
        message: message.into(),
    }
}

/// The parameters object (`null` counts as empty), refusing keys not in `known`.
pub fn object<'a>(
    params: &'a Value,
    known: &[&str],
) -> Result<Option<&'a Map<String, Value>>, PlanError> {
    let obj = match params {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => {
            return Err(PlanError::BadParams {
                field: "params".into(),
                message: "must be an object".into(),
            })
        }
    };
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        let expected = if known.is_empty() {
            "this plan takes no parameters".to_owned()
        } else {
            format!("expected one of: {}", known.join(", "))
        };
        return Err(bad(k, format!("unknown parameter ({expected})")));
    }
    Ok(Some(obj))
}

/// The required `target_region`: one of the pair.
pub fn target_region(
    obj: Option<&Map<String, Value>>,
    pair: &RegionPair,
) -> Result<String, PlanError> {
    match obj.and_then(|o| o.get(TARGET_REGION)) {
        Some(Value::String(r)) if pair.contains(r) => Ok(r.clone()),
        Some(Value::String(r)) => Err(bad(
            TARGET_REGION,
            format!(
                "{r:?} is not one of the pair ({}, {})",
                pair.hot(),
                pair.cold()
            ),
        )),
        Some(_) => Err(bad(TARGET_REGION, "must be a region name")),
        None => Err(bad(
            TARGET_REGION,
            format!("required: the region to move to ({})", pair.either()),
        )),
    }
}

/// An optional unsigned integer in `min..=max`.
pub fn uint(
    obj: Option<&Map<String, Value>>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, PlanError> {
    let Some(v) = obj.and_then(|o| o.get(field)) else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(bad(
            field,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

/// An optional number in `min..=max`.
pub fn number(
    obj: Option<&Map<String, Value>>,
    field: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, PlanError> {
    let Some(v) = obj.and_then(|o| o.get(field)) else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= min && n <= max => Ok(Some(n)),
        _ => Err(bad(field, format!("must be a number from {min} to {max}"))),
    }
}

/// An optional boolean.
pub fn boolean(obj: Option<&Map<String, Value>>, field: &str) -> Result<Option<bool>, PlanError> {
    match obj.and_then(|o| o.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(field, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pair() -> RegionPair {
        RegionPair::new("us-east-1", "us-west-2")
    }

    fn field_and_message(e: PlanError) -> (String, String) {
        match e {
            PlanError::BadParams { field, message } => (field, message),
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn target_region_must_be_one_of_the_pair() {
        let p = json!({"target_region": "us-west-2"});
        let obj = object(&p, &[TARGET_REGION]).unwrap();
        assert_eq!(target_region(obj, &pair()).unwrap(), "us-west-2");

        for (params, wanted) in [
            (json!({"target_region": "eu-west-1"}), "not one of the pair"),
            (json!({"target_region": 3}), "must be a region name"),
            (
                json!({}),
                "required: the region to move to (us-east-1 or us-west-2)",
            ),
            (json!(null), "required"),
        ] {
            let obj = object(&params, &[TARGET_REGION]).unwrap();
            let (field, message) = field_and_message(target_region(obj, &pair()).unwrap_err());
            assert_eq!(field, "params.target_region");
            assert!(message.contains(wanted), "{message}");
        }
    }

    #[test]
    fn unknown_keys_and_non_objects_are_refused() {
        let (field, message) =
            field_and_message(object(&json!({"target": 1}), &[TARGET_REGION]).unwrap_err());
        assert_eq!(field, "params.target");
        assert!(
            message.contains("expected one of: target_region"),
            "{message}"
        );
        let (_, message) = field_and_message(object(&json!({"x": 1}), &[]).unwrap_err());
        assert!(message.contains("takes no parameters"), "{message}");
        let (field, _) = field_and_message(object(&json!([1]), &[]).unwrap_err());
        assert_eq!(field, "params");
    }
}
