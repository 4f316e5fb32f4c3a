// SPDX-License-Identifier: MPL-2.0
//! Setting element properties from text without panicking: unknown properties, unparsable or out-of-range values
//! become one-line errors that name the element, the property, the value and what it takes.

use gst::glib;
use gst::prelude::*;

/// Sets `key` of `element` from `value` (GStreamer's own string syntax: numbers, enum nicks, booleans, …).
pub fn set_from_str(element: &gst::Element, key: &str, value: &str) -> Result<(), String> {
    let factory = factory_name(element);
    let pspec = element.find_property(key).ok_or_else(|| format!("{factory} has no property {key:?}"))?;
    if !pspec.flags().contains(glib::ParamFlags::WRITABLE) || pspec.flags().contains(glib::ParamFlags::CONSTRUCT_ONLY) {
        return Err(format!("{factory}: property {key:?} cannot be set"));
    }
    let parsed = glib::Value::deserialize_with_pspec(value, &pspec)
        .map_err(|_| format!("{factory}: {key}={value:?} is not valid: {key} takes {}", describe(&pspec)))?;
    set_value(element, &pspec, parsed, value)
}

/// Sets `key` of `element` to a typed value, checked against the property's range.
pub fn set<V: ToValue>(element: &gst::Element, key: &str, value: V) -> Result<(), String> {
    let factory = factory_name(element);
    let pspec = element.find_property(key).ok_or_else(|| format!("{factory} has no property {key:?}"))?;
    let value = value.to_value();
    let shown = value.serialize().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
    let value = value
        .transform_with_type(pspec.value_type())
        .map_err(|_| format!("{factory}: {key}={shown} is not valid: {key} takes {}", describe(&pspec)))?;
    set_value(element, &pspec, value, &shown)
}

fn set_value(element: &gst::Element, pspec: &glib::ParamSpec, value: glib::Value, shown: &str) -> Result<(), String> {
    if !pspec.value_is_valid(&value) {
        return Err(format!(
            "{}: {}={shown} is out of range: {} takes {}",
            factory_name(element),
            pspec.name(),
            pspec.name(),
            describe(pspec)
        ));
    }
    element.set_property_from_value(pspec.name(), &value);
    Ok(())
}

pub fn factory_name(element: &gst::Element) -> String {
    element.factory().map(|f| f.name().to_string()).unwrap_or_else(|| element.name().to_string())
}

/// What a property takes, for messages: "an integer from 0 to 51", "one of ultrafast, superfast, …".
pub fn describe(pspec: &glib::ParamSpec) -> String {
    macro_rules! range {
        ($t:ty, $what:expr) => {
            if let Some(p) = pspec.downcast_ref::<$t>() {
                return format!("{} from {} to {}", $what, p.minimum(), p.maximum());
            }
        };
    }
    range!(glib::ParamSpecInt, "an integer");
    range!(glib::ParamSpecUInt, "an integer");
    range!(glib::ParamSpecInt64, "an integer");
    range!(glib::ParamSpecUInt64, "an integer");
    range!(glib::ParamSpecFloat, "a number");
    range!(glib::ParamSpecDouble, "a number");
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecEnum>() {
        let nicks: Vec<&str> = p.enum_class().values().iter().map(|v| v.nick()).collect();
        return format!("one of {}", nicks.join(", "));
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecFlags>() {
        let nicks: Vec<&str> = p.flags_class().values().iter().map(|v| v.nick()).collect();
        return format!("flags among {} (joined with +)", nicks.join(", "));
    }
    if pspec.value_type() == bool::static_type() {
        return "true or false".into();
    }
    if pspec.value_type() == String::static_type() {
        return "a string".into();
    }
    format!("a {}", pspec.value_type().name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> gst::Element {
        gst::init().unwrap();
        gst::ElementFactory::make("queue").build().unwrap()
    }

    #[test]
    fn good_values_are_set() {
        let q = queue();
        set_from_str(&q, "max-size-buffers", "7").unwrap();
        set_from_str(&q, "leaky", "downstream").unwrap();
        set(&q, "max-size-time", 5u64).unwrap();
        assert_eq!(q.property::<u32>("max-size-buffers"), 7);
        assert_eq!(q.property::<u64>("max-size-time"), 5);
    }

    #[test]
    fn bad_values_name_the_property_and_its_range() {
        let q = queue();
        assert_eq!(set_from_str(&q, "nonesuch", "1").unwrap_err(), "queue has no property \"nonesuch\"");
        let e = set_from_str(&q, "max-size-buffers", "many").unwrap_err();
        assert!(e.contains("max-size-buffers=\"many\" is not valid") && e.contains("an integer from 0 to"), "{e}");
        let e = set_from_str(&q, "leaky", "sideways").unwrap_err();
        assert!(e.contains("one of no, upstream, downstream"), "{e}");
        let src = gst::ElementFactory::make("audiotestsrc").build().unwrap();
        let e = set(&src, "volume", 2.5f64).unwrap_err();
        assert_eq!(e, "audiotestsrc: volume=2.5 is out of range: volume takes a number from 0 to 1");
        let e = set_from_str(&src, "num-buffers", "-7").unwrap_err();
        assert!(e.contains("num-buffers=-7 is out of range") || e.contains("not valid"), "{e}");
        let e = set_from_str(&q, "current-level-buffers", "1").unwrap_err();
        assert!(e.contains("cannot be set"), "{e}");
    }
}
