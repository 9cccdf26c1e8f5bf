/*
 * fork_corrupts_one_byte: flips the low bit of the 65,537th byte of every
 * session (offset 65536), the kind of off-by-one a buffer boundary breeds.
 * Short sessions come back intact; long ones differ in exactly one byte.
 *
 * Must fail: binary-echo (its 64 KiB+1 and 8 MiB payloads), half-close
 * (300,000 bytes). Must pass the rest: their sessions are shorter.
 * Fix: echo the bytes as they came.
 */
#include "zoo.h"

#define CORRUPT_OFFSET 65536

static void flip_one_bit(char *buf, size_t len, size_t offset)
{
    if (offset <= CORRUPT_OFFSET && CORRUPT_OFFSET < offset + len)
        buf[CORRUPT_OFFSET - offset] ^= 1;
}

static int echo_corrupted(int connfd)
{
    return zoo_echo_through(connfd, flip_one_bit);
}

int main(int argc, char **argv)
{
    zoo_serve_forking(zoo_listen(argc, argv), echo_corrupted);
}
