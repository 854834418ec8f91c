/* Stands for a library's header installed on the system: a table defined in it. */
static const unsigned short vendor_crc_table[256] = {1, 2, 3};
