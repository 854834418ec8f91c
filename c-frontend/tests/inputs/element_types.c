/* args: -std=c99 */
typedef double real;
typedef real vec3[3];
struct particle { double pos[3], vel[3]; int id; };
union cell { double d; long l; };
typedef struct particle particle_t;

static vec3 points[100000];
struct particle particles[50000];
static union cell cells[1 << 17];
particle_t more[1 << 14];
static struct { int a; double b[4]; } anon[1 << 16];

double first(void) { return points[0][0] + particles[0].pos[0] + cells[0].d + more[0].vel[1] + anon[0].b[0]; }
