use dlm::dlm;

type Count = u64;

#[dlm]
static COUNT: Count;

fn main() {}
