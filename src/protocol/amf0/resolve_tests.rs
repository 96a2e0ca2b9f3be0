use super::*;

#[test]
fn resolved_copies_never_exceed_the_depth_limit() {
    let limits = AmfLimits {
        max_depth: 4,
        max_values: 1000,
    };
    let mut deep = Amf0Value::Null;
    for _ in 0..4 {
        deep = Amf0Value::StrictArray(vec![deep]);
    }
    // The copy would sit one level below the top: depth 5.
    let values = vec![
        deep.clone(),
        Amf0Value::StrictArray(vec![Amf0Value::Reference(0)]),
    ];
    assert!(matches!(
        resolve_references(values, &limits),
        Err(Amf0Error::DepthExceeded { max_depth: 4, .. })
    ));
    // At the top level it fits.
    let values = vec![deep.clone(), Amf0Value::Reference(0)];
    assert_eq!(
        resolve_references(values, &limits).expect("resolves"),
        vec![deep.clone(), deep]
    );
}

#[test]
fn copies_of_long_strings_are_weighed_by_their_bytes() {
    let obj = Amf0Value::object([("s", Amf0Value::LongString("z".repeat(65_536)))]);
    let refs = |n| {
        let mut values = vec![obj.clone()];
        values.extend(std::iter::repeat_n(Amf0Value::Reference(0), n));
        values
    };
    // 1026 each: ten copies pass, a hundred would be 6.5 MB from 300 bytes of references.
    assert!(resolve_references(refs(10), &AmfLimits::default()).is_ok());
    assert!(matches!(
        resolve_references(refs(100), &AmfLimits::default()),
        Err(Amf0Error::TooManyValues { .. })
    ));
}

#[test]
fn references_resolve_to_copies_and_loops_are_refused() {
    let limits = AmfLimits::default();
    let obj = Amf0Value::object([("a", Amf0Value::Number(1.0))]);
    let values = vec![obj.clone(), Amf0Value::Reference(0)];
    assert_eq!(
        resolve_references(values, &limits).expect("resolves"),
        vec![obj.clone(), obj.clone()]
    );
    // An object containing a reference to itself.
    let looped = vec![Amf0Value::object([("me", Amf0Value::Reference(0))])];
    assert!(matches!(
        resolve_references(looped, &limits),
        Err(Amf0Error::BadReference { .. })
    ));
    // A reference past the table.
    assert!(resolve_references(vec![Amf0Value::Reference(3)], &limits).is_err());
    // Copies count against the budget: a chain of doubling arrays.
    let tight = AmfLimits {
        max_depth: 32,
        max_values: 50,
    };
    let mut chain = vec![Amf0Value::StrictArray(vec![Amf0Value::Null])];
    for i in 0..10u16 {
        chain.push(Amf0Value::StrictArray(vec![
            Amf0Value::Reference(i),
            Amf0Value::Reference(i),
        ]));
    }
    assert!(matches!(
        resolve_references(chain, &tight),
        Err(Amf0Error::TooManyValues { .. })
    ));
}
