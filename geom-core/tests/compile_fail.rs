//! The rules the types enforce: each of these programs breaks one and must not compile.

#[test]
fn rules_are_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
