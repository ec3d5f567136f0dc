// Every public header was compiled on its own into this program; getting here is the test.
int main() { return 0; }
