//go:build linux && cgo

// The jail's init, in C: it runs from a constructor, before the Go runtime
// and every package's init would start, when this binary is re-executed
// with argv[0] "vane-jail-init" and _VANE_JAIL_INIT=1 (see init.go for the
// protocol). A Go init paid vane's whole runtime start and every package
// initializer (about 7 ms of CPU) per jail; this one starts in well under
// a millisecond. It never returns to Go: it ends with _exit.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/mount.h>
#include <net/route.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

// Descriptors the parent passes (init.go's ctlFD, statusFD, exeFD, apiDirFD).
#define CTL_FD 3
#define STATUS_FD 4
#define EXE_FD 5
#define APIDIR_FD 6

#define MAX_SPEC (128 << 10) // init.go's maxSpecBytes
#define MAX_FDS 64
#define MAX_CONNS 64
#define CONN_BUF 16384

#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct mnt {
	const char *kind, *src, *dst;
	int rw, file, dev, fd;
	long long size;
};

struct spec {
	const char *root, *dir, *hostname, *tunpath;
	const char **argv, **env;
	int argc, envc;
	struct mnt *mounts;
	int nmounts;
	int probe, apiport, merge, egress;
	unsigned long long cpu, nproc, nofile, fsize, as;
};

// status writes one line on the status pipe.
static void status(const char *fmt, ...) {
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(STATUS_FD, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

// fail reports why the jail could not be built and returns the init's exit code.
static int fail(const char *step, const char *what) {
	int e = errno;
	status("err %s%s%s: %s", step, what ? " " : "", what ? what : "", strerror(e));
	return 127;
}

// failmsg is fail for errors that are not an errno.
static int failmsg(const char *step, const char *msg) {
	status("err %s: %s", step, msg);
	return 127;
}

static unsigned long long num(const char *s) { return strtoull(s, NULL, 10); }

// read_spec reads one spec message and its descriptors: NUL-terminated
// tokens, key then value, "mount" followed by its six fields (see
// initSpec.encode). Returns 0, or -1 with errno (EPROTO for a bad message).
static int read_spec(struct spec *sp) {
	char *buf = malloc(MAX_SPEC);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MAX_FDS * sizeof(int))];
	} cm;
	if (!buf)
		return -1;
	struct iovec iov = {.iov_base = buf, .iov_len = MAX_SPEC};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
	ssize_t n;
	do
		n = recvmsg(CTL_FD, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0) {
		errno = EPIPE;
		return -1;
	}
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || buf[n - 1] != '\0') {
		errno = EPROTO;
		return -1;
	}
	int fds[MAX_FDS], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < k && nfds < MAX_FDS; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	// Count tokens to size the arrays.
	int ntok = 0;
	for (ssize_t i = 0; i < n; i++)
		ntok += buf[i] == '\0';
	const char **tok = calloc(ntok + 1, sizeof *tok);
	sp->argv = calloc(ntok + 1, sizeof *sp->argv);
	sp->env = calloc(ntok + 1, sizeof *sp->env);
	sp->mounts = calloc(ntok / 7 + 1, sizeof *sp->mounts);
	if (!tok || !sp->argv || !sp->env || !sp->mounts)
		return -1;
	for (ssize_t i = 0, t = 0; i < n; t++) {
		tok[t] = buf + i;
		i += strlen(buf + i) + 1;
	}
	for (int t = 0; t < ntok;) {
		const char *k = tok[t++];
		if (strcmp(k, "mount") == 0) {
			if (t + 6 > ntok)
				goto bad;
			struct mnt *m = &sp->mounts[sp->nmounts++];
			m->kind = tok[t];
			m->src = tok[t + 1];
			m->dst = tok[t + 2];
			m->rw = strchr(tok[t + 3], 'w') != NULL;
			m->file = strchr(tok[t + 3], 'f') != NULL;
			m->dev = strchr(tok[t + 3], 'd') != NULL;
			int idx = atoi(tok[t + 4]);
			m->size = strtoll(tok[t + 5], NULL, 10);
			m->fd = -1;
			if (idx >= 0) {
				if (idx >= nfds)
					goto bad;
				m->fd = fds[idx];
			}
			t += 6;
			continue;
		}
		if (t >= ntok)
			goto bad;
		const char *v = tok[t++];
		if (!strcmp(k, "root"))
			sp->root = v;
		else if (!strcmp(k, "argv"))
			sp->argv[sp->argc++] = v;
		else if (!strcmp(k, "env"))
			sp->env[sp->envc++] = v;
		else if (!strcmp(k, "dir"))
			sp->dir = v;
		else if (!strcmp(k, "hostname"))
			sp->hostname = v;
		else if (!strcmp(k, "tunpath"))
			sp->tunpath = v;
		else if (!strcmp(k, "probe"))
			sp->probe = v[0] == '1';
		else if (!strcmp(k, "merge"))
			sp->merge = v[0] == '1';
		else if (!strcmp(k, "apiport"))
			sp->apiport = atoi(v);
		else if (!strcmp(k, "egress"))
			sp->egress = v[0] == '1';
		else if (!strcmp(k, "cpu"))
			sp->cpu = num(v);
		else if (!strcmp(k, "nproc"))
			sp->nproc = num(v);
		else if (!strcmp(k, "nofile"))
			sp->nofile = num(v);
		else if (!strcmp(k, "fsize"))
			sp->fsize = num(v);
		else if (!strcmp(k, "as"))
			sp->as = num(v);
		else
			goto bad;
	}
	return 0;
bad:
	errno = EPROTO;
	return -1;
}

// join returns a + "/" + b (b may start with "/"), in a static-free buffer.
static char *join(const char *a, const char *b) {
	size_t la = strlen(a);
	while (la > 0 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	char *p = malloc(la + strlen(b) + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	strcpy(p + la + 1, b);
	return p;
}

// mkdirs is mkdir -p.
static int mkdirs(const char *path, mode_t mode) {
	char *p = strdup(path);
	if (!p)
		return -1;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				free(p);
				return -1;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return 0;
}

static int parent_dirs(const char *path) {
	char *p = strdup(path);
	if (!p)
		return -1;
	char *slash = strrchr(p, '/');
	int r = 0;
	if (slash && slash != p) {
		*slash = '\0';
		r = mkdirs(p, 0755);
	}
	free(p);
	return r;
}

// mount_one puts one entry of the jail's root at root+m->dst.
static int mount_one(const char *root, struct mnt *m) {
	char *dst = join(root, m->dst);
	if (!dst)
		return -1;
	int r = -1;
	if (!strcmp(m->kind, "symlink")) {
		if (parent_dirs(dst) == 0)
			r = symlink(m->src, dst);
	} else if (!strcmp(m->kind, "tmpfs")) {
		char opts[64] = "mode=1777";
		if (m->size > 0)
			snprintf(opts, sizeof opts, "mode=1777,size=%lld", m->size);
		if (mkdirs(dst, 0755) == 0)
			r = mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts);
	} else if (!strcmp(m->kind, "bind")) {
		if (m->file) {
			int fd;
			if (parent_dirs(dst) < 0 || (fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) < 0)
				goto out;
			close(fd);
		} else if (mkdirs(dst, 0755) < 0) {
			goto out;
		}
		if (m->fd >= 0) {
			// A detached mount the root parent made (open_tree): move it in.
			r = syscall(SYS_move_mount, m->fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH);
			close(m->fd);
			goto out;
		}
		if (mount(m->src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
			goto out;
		unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID;
		if (!m->dev)
			flags |= MS_NODEV;
		if (!m->rw)
			flags |= MS_RDONLY;
		// Flags the source mount has locked (noexec, ...) must be kept, or
		// the kernel refuses the remount inside a user namespace.
		struct statfs st;
		if (statfs(dst, &st) == 0) {
			flags |= st.f_flags & (MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
			if (st.f_flags & ST_RDONLY)
				flags |= MS_RDONLY;
		}
		r = mount("", dst, NULL, flags, NULL);
	} else {
		errno = EINVAL;
	}
out:
	free(dst);
	return r;
}

static int write_file(const char *path, const char *content) {
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t n = strlen(content);
	ssize_t w = write(fd, content, n);
	int e = errno;
	close(fd);
	errno = e;
	return w == (ssize_t)n ? 0 : -1;
}

// build_dev makes a minimal /dev: a few character devices bound from the
// host and the standard symlinks.
static int build_dev(const char *dev) {
	if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") < 0)
		return -1;
	static const char *devs[] = {"null", "zero", "full", "random", "urandom"};
	for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
		char src[64];
		snprintf(src, sizeof src, "/dev/%s", devs[i]);
		struct mnt m = {.kind = "bind", .src = src, .dst = devs[i], .rw = 1, .file = 1, .dev = 1, .fd = -1};
		if (mount_one(dev, &m) < 0)
			return -1;
	}
	static const char *links[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
	for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
		char *p = join(dev, links[i][0]);
		int r = p ? symlink(links[i][1], p) : -1;
		free(p);
		if (r < 0)
			return -1;
	}
	return 0;
}

// write_etc writes the few /etc files programs expect; nothing of the
// host's /etc is visible.
static int write_etc(const char *etc) {
	static const char *files[][2] = {
	    {"passwd", "root:x:0:0:job:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
	    {"group", "root:x:0:\nnogroup:x:65534:\n"},
	    {"hosts", "127.0.0.1 localhost\n::1 localhost\n"},
	    {"hostname", "job\n"},
	};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char *p = join(etc, files[i][0]);
		int r = p ? write_file(p, files[i][1]) : -1;
		free(p);
		if (r < 0)
			return -1;
	}
	return 0;
}

// loopback_up sets lo up in the jail's empty network namespace.
static int loopback_up(void) {
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	int r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

// The jail's side of its egress link (init.go's egress addresses): a tun
// device whose other end is vane's user-space network stack. The addresses
// come from the benchmarking ranges (198.18.0.0/15, 2001:2::/48), which no
// job has a reason to reach and which the egress policy refuses anyway.
#define TUN_NAME "vane0"
#define TUN_ADDR4 "198.18.0.2"
#define TUN_GW4 "198.18.0.1"
#define TUN_ADDR6 "2001:2::2"
#define TUN_GW6 "2001:2::1"

// The kernel's in6_ifreq and in6_rtmsg (linux/ipv6.h, linux/ipv6_route.h),
// declared here because those headers clash with glibc's netinet/in.h.
struct vane_in6_ifreq {
	struct in6_addr addr;
	uint32_t prefixlen;
	int ifindex;
};
struct vane_in6_rtmsg {
	struct in6_addr dst, src, gateway;
	uint32_t type;
	uint16_t dst_len, src_len;
	uint32_t metric;
	unsigned long info;
	uint32_t flags;
	int ifindex;
};

// send_fd passes fd to vane on the control socket, with a one-word tag.
static int send_fd(const char *tag, int fd) {
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof cm);
	struct iovec iov = {.iov_base = (void *)tag, .iov_len = strlen(tag)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(CTL_FD, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

// egress_up gives the jail a default route (IPv4, and IPv6 where the kernel
// has it) through a tun device, and hands the device to vane, whose network
// stack decides every connection under the egress policy. It runs before
// pivot_root, while the host's /dev/net/tun is still in reach; the device
// is created in the jail's network namespace (the one the open happens in),
// which the init administers as root of its user namespace. Nothing else of
// the host's network is visible to the job.
static int egress_up(const char *root, const char *tunpath) {
	// Without this the IPv6 address stays tentative for a second (DAD).
	char *dad = join(root, "proc/sys/net/ipv6/conf/default/accept_dad");
	if (dad)
		write_file(dad, "0");
	free(dad);
	// Nor does the device solicit routers: its first packet is then the
	// job's own, which is what starts vane's network stack (netstack.go).
	char *rs = join(root, "proc/sys/net/ipv6/conf/default/router_solicitations");
	if (rs)
		write_file(rs, "0");
	free(rs);
	int tun = open(tunpath ? tunpath : "/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (tun < 0)
		return fail("egress", "open /dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, TUN_NAME);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	if (ioctl(tun, TUNSETIFF, &ifr) < 0)
		return fail("egress", "create tun device");
	// Persistent: vane's close of its end then detaches from the device
	// instead of unregistering it, which would wait for RCU grace periods
	// holding the kernel's rtnl lock (every other jail's network set-up
	// waits on it); the device goes with the namespace, in the same batch
	// as its loopback.
	if (ioctl(tun, TUNSETPERSIST, 1) < 0)
		return fail("egress", "make tun device persistent");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("egress", "socket");
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, TUN_ADDR4, &sin->sin_addr);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		return fail("egress", "set tun address");
	inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		return fail("egress", "set tun netmask");
	memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return fail("egress", "read tun flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return fail("egress", "bring tun up");
	struct rtentry rt;
	memset(&rt, 0, sizeof rt);
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
	gw->sin_family = AF_INET;
	inet_pton(AF_INET, TUN_GW4, &gw->sin_addr);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = TUN_NAME;
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		return fail("egress", "add default route");
	close(s);
	// IPv6 is best effort: a kernel without it leaves the job IPv4 only.
	int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s6 >= 0) {
		memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
		if (ioctl(s6, SIOCGIFINDEX, &ifr) == 0) {
			struct vane_in6_ifreq a = {.prefixlen = 64, .ifindex = ifr.ifr_ifindex};
			inet_pton(AF_INET6, TUN_ADDR6, &a.addr);
			if (ioctl(s6, SIOCSIFADDR, &a) == 0) {
				struct vane_in6_rtmsg r6 = {.flags = RTF_UP | RTF_GATEWAY, .metric = 1, .ifindex = ifr.ifr_ifindex};
				inet_pton(AF_INET6, TUN_GW6, &r6.gateway);
				ioctl(s6, SIOCADDRT, &r6);
			}
		}
		close(s6);
	}
	char *resolv = join(root, "etc/resolv.conf");
	if (!resolv || write_file(resolv, "nameserver " TUN_GW4 "\nnameserver " TUN_GW6 "\noptions timeout:2 attempts:2\n") < 0)
		return fail("egress", "write /etc/resolv.conf");
	free(resolv);
	if (send_fd("tun", tun) < 0)
		return fail("egress", "pass the tun device to vane");
	close(tun);
	return 0;
}

// egress_down takes the tun device down for a job without egress: its
// routes go with it, so a connection fails at once with "network
// unreachable" instead of waiting on a device nobody reads.
static int egress_down(void) {
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("egress", "socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, TUN_NAME);
	// The device is persistent (egress_up): vane's close of its end leaves
	// it registered until the namespace goes, so it is taken down here. A
	// device already gone is as good as down.
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return errno == ENODEV ? (close(s), 0) : fail("egress", "read tun flags");
	ifr.ifr_flags &= ~(IFF_UP | IFF_RUNNING);
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0 && errno != ENODEV)
		return fail("egress", "take tun down");
	close(s);
	return 0;
}

// prepare_root makes the shared part of the new root: a tmpfs with the
// read-only system paths, a fresh /proc, a minimal /dev and /etc, and the
// loopback up. A pooled init does this before any job exists.
static int prepare_root(struct spec *prep) {
	const char *root = prep->root;
	if (mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail("prepare root", "make mounts private");
	if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
		return fail("prepare root", "mount root tmpfs");
	static const char *dirs[] = {"proc", "dev", "etc", "tmp", ".oldroot"};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char *p = join(root, dirs[i]);
		if (!p || mkdirs(p, 0755) < 0)
			return fail("prepare root", dirs[i]);
		free(p);
	}
	for (int i = 0; i < prep->nmounts; i++)
		if (mount_one(root, &prep->mounts[i]) < 0)
			return fail("prepare root: mount", prep->mounts[i].dst);
	char *proc = join(root, "proc");
	if (!proc || mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return fail("prepare root", "mount /proc");
	// No nested user namespaces: in one, a job would get a fresh
	// RLIMIT_NPROC count and capabilities. The sysctl is per user namespace.
	char *sysctl = join(proc, "sys/user/max_user_namespaces");
	if (!sysctl || (write_file(sysctl, "0") < 0 && errno != ENOENT))
		return fail("prepare root", "forbid nested user namespaces");
	char *dev = join(root, "dev"), *etc = join(root, "etc");
	if (!dev || build_dev(dev) < 0)
		return fail("prepare root", "build /dev");
	if (!etc || write_etc(etc) < 0)
		return fail("prepare root", "write /etc");
	if (loopback_up() < 0)
		return fail("prepare root", "bring loopback up");
	return 0;
}

// finish_root adds the job's mounts (its /tmp, directory, extra paths) to
// the prepared root, pivots into it, drops the old root and enters the job
// directory.
static int finish_root(const char *root, struct spec *sp) {
	for (int i = 0; i < sp->nmounts; i++)
		if (mount_one(root, &sp->mounts[i]) < 0)
			return fail("build root: mount", sp->mounts[i].dst);
	char *old = join(root, ".oldroot");
	if (!old || syscall(SYS_pivot_root, root, old) < 0)
		return fail("build root", "pivot_root");
	if (chdir("/") < 0)
		return fail("build root", "chdir /");
	if (umount2("/.oldroot", MNT_DETACH) < 0)
		return fail("build root", "unmount old root");
	rmdir("/.oldroot");
	if (mount("", "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return fail("build root", "remount root read-only");
	if (chdir(sp->dir) < 0)
		return fail("build root: chdir to job dir", sp->dir);
	return 0;
}

// look_path finds argv0 in the jail: a path as given, a bare name through
// the target's PATH. Returns a malloc'd path or NULL with errno.
static char *look_path(const char *argv0, struct spec *sp) {
	if (strchr(argv0, '/')) {
		struct stat st;
		return stat(argv0, &st) == 0 ? strdup(argv0) : NULL;
	}
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (int i = 0; i < sp->envc; i++)
		if (!strncmp(sp->env[i], "PATH=", 5))
			path = sp->env[i] + 5;
	char *list = strdup(path);
	if (!list)
		return NULL;
	char *save = NULL;
	for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = join(d, argv0);
		struct stat st;
		if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
			free(list);
			return p;
		}
		free(p);
	}
	free(list);
	errno = ENOENT;
	return NULL;
}

static int set_limit(int res, unsigned long long v, unsigned long long max) {
	struct rlimit lim = {.rlim_cur = v, .rlim_max = max};
	return setrlimit(res, &lim);
}

// set_limits applies the rlimits to the init itself; the target inherits
// them. RLIMIT_NPROC counts the init too.
static int set_limits(struct spec *sp) {
	if (set_limit(RLIMIT_CORE, 0, 0) < 0)
		return fail("set rlimits", "core");
	if (sp->cpu && set_limit(RLIMIT_CPU, sp->cpu, sp->cpu + 1) < 0) // SIGXCPU, then SIGKILL a second later
		return fail("set rlimits", "cpu");
	if (sp->nofile && set_limit(RLIMIT_NOFILE, sp->nofile, sp->nofile) < 0)
		return fail("set rlimits", "nofile");
	if (sp->fsize && set_limit(RLIMIT_FSIZE, sp->fsize, sp->fsize) < 0)
		return fail("set rlimits", "fsize");
	if (sp->nproc && set_limit(RLIMIT_NPROC, sp->nproc + 1, sp->nproc + 1) < 0)
		return fail("set rlimits", "nproc");
	return 0;
}

// child_exec runs in the forked target: it holds no capability (no_new_privs,
// an empty bounding and ambient set), has default signal handling, its own
// session and RLIMIT_AS, then execs. On failure it writes errno to errfd.
static void child_exec(const char *path, struct spec *sp, int errfd) {
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	int e = 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto out;
	for (int c = 0; c <= 63; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			goto out;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (setsid() < 0)
		goto out;
	if (sp->merge && dup2(1, 2) < 0)
		goto out;
	// RLIMIT_AS for the target only, in force before its first instruction.
	if (sp->as && set_limit(RLIMIT_AS, sp->as, sp->as) < 0)
		goto out;
	execve(path, (char *const *)sp->argv, (char *const *)sp->env);
out:
	e = errno;
	if (write(errfd, &e, sizeof e) < 0) {
	}
	_exit(127);
}

// Connections of the API forwarder: 127.0.0.1:apiport in the jail to the
// unix socket api.sock in the directory at APIDIR_FD, copied both ways.
struct half {
	char buf[CONN_BUF];
	size_t len, off;
	int eof;  // the source reached EOF (or failed)
	int shut; // the destination's write side was shut down
};

struct conn {
	int fd[2];       // [0] the job's TCP connection, [1] vane's unix socket
	struct half h[2]; // h[0]: fd[0] -> fd[1]; h[1]: fd[1] -> fd[0]
};

static struct conn *conns[MAX_CONNS];

static void conn_close(int i) {
	close(conns[i]->fd[0]);
	close(conns[i]->fd[1]);
	free(conns[i]);
	conns[i] = NULL;
}

static void forward_accept(int ln) {
	for (;;) {
		int c = accept4(ln, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return;
		int slot = -1;
		for (int i = 0; i < MAX_CONNS; i++)
			if (!conns[i]) {
				slot = i;
				break;
			}
		// Non-blocking: a unix connect completes at once or fails (EAGAIN
		// when vane's backlog is full); it never stalls this loop.
		int u = slot < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		struct sockaddr_un addr = {.sun_family = AF_UNIX};
		snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/api.sock", APIDIR_FD);
		if (u < 0 || connect(u, (struct sockaddr *)&addr, sizeof addr) < 0) {
			if (u >= 0)
				close(u);
			close(c);
			continue;
		}
		struct conn *k = calloc(1, sizeof *k);
		if (!k) {
			close(u);
			close(c);
			continue;
		}
		k->fd[0] = c;
		k->fd[1] = u;
		conns[slot] = k;
	}
}

// conn_step moves what it can of connection i both ways; it closes the
// connection once both directions are done or one fails.
static void conn_step(int i) {
	struct conn *k = conns[i];
	for (int d = 0; d < 2; d++) {
		struct half *h = &k->h[d];
		int src = k->fd[d], dst = k->fd[1 - d];
		if (h->len == 0 && !h->eof) {
			ssize_t n = read(src, h->buf, sizeof h->buf);
			if (n > 0) {
				h->len = n;
				h->off = 0;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				h->eof = 1;
			}
		}
		while (h->off < h->len) {
			ssize_t n = write(dst, h->buf + h->off, h->len - h->off);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				conn_close(i);
				return;
			}
			h->off += n;
		}
		if (h->off == h->len)
			h->len = h->off = 0;
		if (h->eof && h->len == 0 && !h->shut) {
			shutdown(dst, SHUT_WR);
			h->shut = 1;
		}
	}
	if (k->h[0].shut && k->h[1].shut)
		conn_close(i);
}

// reap_all kills every process left in the jail's PID namespace (the init,
// its PID 1, is spared by kill(-1)) and reaps them all: orphans are
// reparented to the init, so once wait reports no child, none is left. The
// kill is repeated after each reap, for processes forked meanwhile.
static void reap_all(void) {
	for (;;) {
		kill(-1, SIGKILL);
		if (waitpid(-1, NULL, __WALL) < 0 && errno != EINTR)
			return; // ECHILD: nothing is left
	}
}

// release_stdio points the init's stdio at /dev/null, so that the pipes
// vane reads reach EOF now that every other holder is gone.
static void release_stdio(void) {
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd <= 2; fd++) {
		if (null >= 0)
			dup3(null, fd, 0);
		else
			close(fd);
	}
	if (null > 2)
		close(null);
}

// serve runs until the target exits (then reports it and returns 0) or
// vane goes away (the control socket's EOF: exits 137, ending the jail).
static int serve(pid_t target, int sigfd, int ln) {
	struct pollfd pfd[3 + 2 * MAX_CONNS];
	int idx[3 + 2 * MAX_CONNS];
	for (;;) {
		int n = 0;
		pfd[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
		// The control socket stays open as a lifeline: vane never writes
		// to it again, so it turns readable only when vane is gone.
		pfd[n++] = (struct pollfd){.fd = CTL_FD, .events = POLLIN};
		if (ln >= 0)
			pfd[n++] = (struct pollfd){.fd = ln, .events = POLLIN};
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *k = conns[i];
			if (!k)
				continue;
			for (int s = 0; s < 2; s++) {
				short ev = 0;
				if (k->h[s].len == 0 && !k->h[s].eof)
					ev |= POLLIN; // fd[s] is the source of h[s]
				if (k->h[1 - s].len > 0)
					ev |= POLLOUT; // fd[s] is the destination of h[1-s]
				idx[n] = i;
				pfd[n++] = (struct pollfd){.fd = k->fd[s], .events = ev};
			}
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 127;
		}
		if (pfd[1].revents) {
			char b;
			if (read(CTL_FD, &b, 1) <= 0)
				_exit(137);
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof si) > 0) {
			}
			int ws;
			pid_t pid;
			while ((pid = waitpid(-1, &ws, WNOHANG | __WALL)) > 0) {
				if (pid != target)
					continue;
				reap_all();
				release_stdio();
				if (WIFSIGNALED(ws))
					status("exit -1 %d", WTERMSIG(ws));
				else
					status("exit %d 0", WEXITSTATUS(ws));
				return 0;
			}
		}
		int first = 2;
		if (ln >= 0) {
			if (pfd[2].revents)
				forward_accept(ln);
			first = 3;
		}
		for (int p = first; p < n; p++)
			if (pfd[p].revents && conns[idx[p]])
				conn_step(idx[p]);
	}
}

static int run_init(void) {
	// Nothing but stdio reaches the target: the init's own descriptors
	// (control socket, status pipe, the API socket's directory, which lies
	// outside the jail's root) and any vane inherited without close-on-exec
	// from whatever started it are closed at the target's exec.
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 1024; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	// A process dumping nothing keeps its /proc/1/* (environ, fds) unreadable.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	static const int ignored[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		signal(ignored[i], SIG_IGN);
	// Stage 1, ahead of need: the parts of the root every job shares.
	struct spec prep = {0}, sp = {0};
	if (read_spec(&prep) < 0)
		return fail("read prepare spec", NULL);
	if (!prep.root)
		return failmsg("read prepare spec", "no root");
	int r = prepare_root(&prep);
	if (r)
		return r;
	// Ahead of need too: making the device and its addresses costs a few
	// milliseconds of kernel work, which a pooled init spends before any job.
	if (prep.egress && (r = egress_up(prep.root, prep.tunpath)))
		return r;
	// Stage 2: the job.
	if (read_spec(&sp) < 0)
		return fail("read spec", NULL);
	if (!sp.dir || sp.argc == 0)
		return failmsg("read spec", "no dir or argv");
	if (prep.egress && !sp.egress && (r = egress_down()))
		return r;
	if ((r = finish_root(prep.root, &sp)))
		return r;
	const char *host = sp.hostname ? sp.hostname : "job";
	if (sethostname(host, strlen(host)) < 0)
		return fail("set hostname", NULL);
	int ln = -1;
	if (sp.apiport > 0) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(sp.apiport), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int one = 1;
		ln = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (ln < 0 || setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
		    bind(ln, (struct sockaddr *)&a, sizeof a) < 0 || listen(ln, 128) < 0)
			return fail("start api forwarder", NULL);
	}
	close(EXE_FD);
	if (sp.probe) {
		status("ok 0");
		status("exit 0 0");
		return 0;
	}
	char *path = look_path(sp.argv[0], &sp);
	if (!path)
		return fail("find", sp.argv[0]);
	if ((r = set_limits(&sp)))
		return r;
	// SIGCHLD is read from a signalfd in serve; blocked from before the
	// fork, so an early exit of the target is not missed.
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0)
		return fail("signalfd", NULL);
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) < 0)
		return fail("start", sp.argv[0]);
	pid_t pid = fork();
	if (pid < 0)
		return fail("start", sp.argv[0]);
	if (pid == 0) {
		close(errp[0]);
		child_exec(path, &sp, errp[1]);
	}
	close(errp[1]);
	int e = 0;
	ssize_t got;
	do
		got = read(errp[0], &e, sizeof e);
	while (got < 0 && errno == EINTR);
	close(errp[0]);
	if (got == sizeof e) {
		waitpid(pid, NULL, 0);
		errno = e;
		return fail("start", sp.argv[0]);
	}
	status("ok %d", pid);
	return serve(pid, sigfd, ln);
}

__attribute__((constructor)) static void vane_jail_init(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc != 1 || strcmp(argv[0], "vane-jail-init") != 0)
		return;
	const char *e = getenv("_VANE_JAIL_INIT");
	if (!e || strcmp(e, "1") != 0)
		return;
	_exit(run_init());
}
