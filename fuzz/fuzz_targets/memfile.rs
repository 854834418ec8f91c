//! Any text given as a memfile (and any size string) parses or is rejected: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(memfile) = dlm::config::memfile::Memfile::parse(std::path::Path::new("fuzz"), &text) {
        assert!(!memfile.servers.is_empty());
        let _ = memfile.check_page_size(4096);
    }
    let _ = dlm_units::parse_size(&text);
});
