//! Any DLM environment and `--` arguments parse or are rejected with a message: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut env = Vec::new();
    let mut argv = vec!["prog".to_string(), "--".to_string()];
    for token in text.split('\0') {
        match token.split_once('=') {
            Some((name, value)) if name.starts_with("DLM_") && name != "DLM_MEMFILE" => {
                env.push((name.to_string(), value.to_string()))
            }
            // A path could name a device that never ends (/dev/zero); the memfile target covers
            // memfile text.
            _ if token.contains('/') => {}
            _ => argv.push(token.to_string()),
        }
    }
    if let Err(e) = dlm::config::from_env_and_args(env, &argv) {
        assert!(!e.to_string().is_empty());
    }
});
