/*!
DLM-WAN: the WAN manager.
*/

pub mod proto;
