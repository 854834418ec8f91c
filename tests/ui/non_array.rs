use dlm::dlm;

#[dlm]
static COUNT: u64;

fn main() {}
