use dlm::dlm;

#[derive(Clone, Copy)]
struct Cell {
    neighbour: &'static u8,
}

#[dlm]
static CELLS: [Cell; 1024];

fn main() {}
