//! The stylesheet and the script, compiled into the binary: the portal loads nothing from
//! anywhere else. They are small and served with `Cache-Control: no-cache`, so that a browser
//! never keeps an old one across an upgrade.

/// `assets/portal.css`.
pub const CSS: &str = include_str!("../assets/portal.css");

/// `assets/portal.js`: the live updates and the plots.
pub const JS: &str = include_str!("../assets/portal.js");

pub const CSS_PATH: &str = "/static/portal.css";
pub const JS_PATH: &str = "/static/portal.js";
