//! Compile-fail tests of `#[dlm]` and `#[dlm::main]`: each misuse gives the expected message at
//! the user's span. Regenerate the .stderr files with `TRYBUILD=overwrite`.

#[test]
fn misuse_of_the_attributes_is_reported() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
