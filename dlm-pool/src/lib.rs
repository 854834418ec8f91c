pub mod assign;
pub mod conf;
pub mod proto;
pub mod size;
pub mod state;
