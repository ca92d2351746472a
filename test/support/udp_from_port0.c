/*
 * Sends one UDP datagram to 127.0.0.1:PORT whose source port is 0 — a packet no ordinary
 * socket can send, which a forged or broken peer can. Needs a raw socket (root or
 * CAP_NET_RAW); exits 77 when it may not open one, so the test can say why it skips.
 *
 * Build: gcc -O2 -Wall -o udp_from_port0 udp_from_port0.c      Run: udp_from_port0 PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: udp_from_port0 PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) {
        fprintf(stderr, "udp_from_port0: raw socket: %s\n", strerror(errno));
        return errno == EPERM || errno == EACCES ? 77 : 1;
    }
    unsigned char packet[sizeof(struct iphdr) + sizeof(struct udphdr) + 172];
    memset(packet, 0, sizeof packet);
    struct iphdr *ip = (struct iphdr *)packet;
    struct udphdr *udp = (struct udphdr *)(packet + sizeof *ip);
    unsigned char *payload = packet + sizeof *ip + sizeof *udp;
    payload[0] = 0x80; /* RTP version 2, payload type 0, the rest zero: a valid-looking packet */
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(sizeof packet);
    ip->saddr = htonl(INADDR_LOOPBACK);
    ip->daddr = htonl(INADDR_LOOPBACK);
    udp->source = htons(0);
    udp->dest = htons((unsigned short)atoi(argv[1]));
    udp->len = htons(sizeof packet - sizeof *ip);
    udp->check = 0; /* no checksum: allowed for UDP over IPv4 */
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = udp->dest, .sin_addr.s_addr = ip->daddr };
    if (sendto(fd, packet, sizeof packet, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof packet) {
        fprintf(stderr, "udp_from_port0: sendto: %s\n", strerror(errno));
        return 1;
    }
    close(fd);
    return 0;
}
