/* args: -std=gnu89 */
main()
{
    char *p;
    p = (char *)malloc(100);
    p[0] = 1;
    free(p);
    return 0;
}
