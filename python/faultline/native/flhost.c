/*
 * flhost: the harness's isolated hosts, in the kernel's terms.
 *
 *   flhost keep PARENT_PID [USERNS_PID]
 *       Make a host: new network and PID namespaces, loopback up (and, when
 *       not run as root, a user namespace first: see below). Prints
 *       "ready OUTER_PID INIT_PID" on stdout, then waits for end of file on
 *       stdin (the harness closing the host) and exits, taking the host
 *       with it. When stdin is a SOCK_SEQPACKET unix socket, each message
 *       of three native ints (family, type, protocol) on it is answered
 *       with one int, 0 or the errno of socket(2), and the socket made in
 *       the host attached (SCM_RIGHTS): a socket stays in the network
 *       namespace it was made in, so the harness gets clients on the host
 *       without joining it, which it cannot do without root. When the host's init could not mount its own /proc (see
 *       mount_host_proc), the line goes on with " noproc CALL: strerror".
 *   flhost exec OUTER_PID PIDFD -- COMMAND [ARG...]
 *       Run COMMAND inside that host. Writes the command's pid (as this
 *       machine's /proc sees it) to descriptor PIDFD, then waits for it and
 *       exits as it did (same code, or killed by the same signal).
 *
 * Why a PID namespace and not only a network one: a network namespace lives
 * as long as any process in it, and servers fork. When a PID namespace's
 * init dies the kernel SIGKILLs everything in it, so the chain
 *     harness --(PDEATHSIG)--> keeper --(PDEATHSIG)--> init --(kernel)--> all
 * guarantees that no server, child, client or tcpdump outlives the harness,
 * even when the harness itself is killed with SIGKILL.
 *
 * Without root (euid != 0), the keeper first makes a user namespace that
 * maps the caller's uid and gid to themselves, or joins the one USERNS_PID
 * is in (two hosts joined by a veth pair must share one: moving an
 * interface into a namespace needs CAP_NET_ADMIN over both). The network,
 * PID and mount namespaces are then that user namespace's, and `flhost
 * exec` joins it before the others and runs commands as the caller with
 * every capability over the host (ambient capabilities). Not as the user
 * namespace's uid 0: an unprivileged user namespace must deny setgroups(2),
 * and a root that cannot set its groups cannot drop privileges either
 * (tcpdump -Z root fails in initgroups). As root, no user namespace is
 * made: hosts are exactly what they were.
 *
 * Why the init mounts a /proc of its own: the harness inspects a host's
 * processes, and the machine's /proc lists every process of the machine.
 * A procfs mounted from inside the PID namespace lists the host's
 * processes only, zombies included; the harness reads it as
 * /proc/INIT_PID/root/proc. It is mounted in a mount namespace that only
 * the init is in (the commands `flhost exec` starts keep the machine's),
 * and that receives the machine's mounts but sends none back.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"

static const char usage_text[] =
    "usage: flhost keep PARENT_PID [USERNS_PID]\n"
    "       flhost exec OUTER_PID PIDFD [UID GID] -- COMMAND [ARG...]\n";

static pid_t parse_pid(const char *text, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || *text == '\0' || *end != '\0' || v <= 0 || v > 4194304)
        die_usage("%s wants a pid, not '%s'", what, text);
    return (pid_t)v;
}

/* Die with the parent: a PDEATHSIG set after the parent already died would
 * never fire, hence the check against the pid we were told. */
static void die_with_parent(pid_t expected_parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        die_errno("prctl", "PR_SET_PDEATHSIG");
    if (expected_parent > 0 && getppid() != expected_parent)
        die("parent %ld is already gone", (long)expected_parent);
}

static void loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die_errno("socket", "AF_INET");
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        die_errno("ioctl SIOCGIFFLAGS", "lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        die_errno("ioctl SIOCSIFFLAGS", "lo");
    close(fd);
}

static void wake(int signo)
{
    (void)signo;
}

/* The host's own /proc, for the init only (see the top of this file).
 * Returns 0, or the errno of the failed call, whose name goes in *call. */
static int mount_host_proc(const char **call)
{
    *call = "unshare(CLONE_NEWNS)";
    if (unshare(CLONE_NEWNS) < 0)
        return errno;
    /* Slave: the machine's mounts and unmounts still reach this copy;
     * the /proc mounted below reaches no one else. */
    *call = "mount(/, MS_REC|MS_SLAVE)";
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return errno;
    *call = "mount(proc on /proc)";
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return errno;
    return 0;
}

/* PID 1 of the host: mount the host's /proc and say how that went on
 * `report` (the end of the keeper's ready line), then adopt orphans (a daemonizing
 * server's, say) and reap them, forever. Only SIGKILL from the keeper
 * ends it. */
static noreturn void run_init(int report)
{
    sigset_t chld, none;
    const char *call;
    char line[160];
    int err;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        _exit(1);
    err = mount_host_proc(&call);
    if (err == 0)
        snprintf(line, sizeof line, "\n");
    else
        snprintf(line, sizeof line, " noproc %s: %s\n", call, strerror(err));
    if (write(report, line, strlen(line)) < 0)
        _exit(1);
    close(report);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    Sigaction(SIGCHLD, wake, SA_NOCLDSTOP);
    sigemptyset(&none);
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        sigsuspend(&none);
    }
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        die_errno("open", path);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        die_errno("write", path);
    close(fd);
}

/* A user namespace in which the caller keeps its uid and gid, the only
 * ones mapped, and has every capability. setgroups must be denied before
 * an unprivileged process may write its gid_map. */
static void enter_new_user_namespace(void)
{
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();

    if (unshare(CLONE_NEWUSER) < 0)
        die_errno("unshare", "CLONE_NEWUSER");
    snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)uid, (unsigned long)uid);
    write_file("/proc/self/uid_map", map);
    write_file("/proc/self/setgroups", "deny\n");
    snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)gid, (unsigned long)gid);
    write_file("/proc/self/gid_map", map);
}

/* Joining a user namespace gives every capability in it, and execve(2)
 * by a uid other than 0 would drop them: made ambient, they are kept. */
static void keep_capabilities_across_exec(void)
{
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    int cap;

    if (syscall(SYS_capget, &header, data) < 0)
        die_errno("capget", NULL);
    for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        data[i].inheritable = data[i].permitted;
    if (syscall(SYS_capset, &header, data) < 0)
        die_errno("capset", "inheritable");
    /* Up to the kernel's last capability, whatever this header knew. */
    for (cap = 0; prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) == 0; cap++)
        ;
    if (errno != EINVAL || cap == 0)
        die_errno("prctl", "PR_CAP_AMBIENT_RAISE");
}

/* One request of the socket service (see the top of this file). A failed
 * reply is the harness's to notice (it reads an end of file). */
static void serve_socket(const int request[3])
{
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr msg;
    struct cmsghdr *cmsg;
    struct iovec iov;
    int reply, fd;

    fd = socket(request[0], request[1] | SOCK_CLOEXEC, request[2]);
    reply = fd < 0 ? errno : 0;
    memset(&msg, 0, sizeof msg);
    iov.iov_base = &reply;
    iov.iov_len = sizeof reply;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    while (sendmsg(STDIN_FILENO, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
    if (fd >= 0)
        close(fd);
}

static void enter_namespace(pid_t outer, const char *which, int nstype);
static int same_namespace(pid_t outer, const char *which);

static int keep(pid_t parent, pid_t userns_of)
{
    char procfs[160];
    int report[2], request[3];
    pid_t init;
    ssize_t r;

    die_with_parent(parent);
    if (userns_of > 0 && !same_namespace(userns_of, "user"))
        enter_namespace(userns_of, "user", CLONE_NEWUSER);
    else if (geteuid() != 0)
        enter_new_user_namespace();
    if (unshare(CLONE_NEWNET | CLONE_NEWPID) < 0)
        die_errno("unshare", "CLONE_NEWNET|CLONE_NEWPID");
    loopback_up();

    if (pipe2(report, O_CLOEXEC) < 0)
        die_errno("pipe2", "host init's report");
    init = fork();
    if (init < 0)
        die_errno("fork", "host init");
    if (init == 0) {
        close(report[0]);
        run_init(report[1]);
    }
    close(report[1]);

    /* "ready" only once the host's /proc is there (or known not to be).
     * The init's report is one write() of less than PIPE_BUF: one read. */
    do
        r = read(report[0], procfs, sizeof procfs - 1);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        die_errno("read", "host init's report");
    close(report[0]);
    if (r == 0 || procfs[r - 1] != '\n')
        die("host init %ld died before mounting its /proc", (long)init);
    procfs[r - 1] = '\0';

    printf("ready %ld %ld%s\n", (long)getpid(), (long)init, procfs);
    if (fflush(stdout) == EOF)
        die_errno("fflush", "stdout");

    /* The harness holds our stdin open for the host's lifetime. On a
     * SOCK_SEQPACKET socket one read() is one message: a request for a
     * socket; anything else is ignored. */
    for (;;) {
        r = read(STDIN_FILENO, request, sizeof request);
        if (r == (ssize_t)sizeof request)
            serve_socket(request);
        else if (r == 0 || (r < 0 && errno != EINTR))
            break;
    }

    kill(init, SIGKILL);
    while (waitpid(init, NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

static void enter_namespace(pid_t outer, const char *which, int nstype)
{
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/%ld/ns/%s", (long)outer, which);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die_errno("open", path);
    if (setns(fd, nstype) < 0)
        die_errno("setns", path);
    close(fd);
}

/* Whether the host's namespace of this kind is ours already: setns()
 * into one's own user namespace fails (EINVAL), and a root host has none
 * of its own. */
static int same_namespace(pid_t outer, const char *which)
{
    char path[64];
    struct stat theirs, ours;

    snprintf(path, sizeof path, "/proc/%ld/ns/%s", (long)outer, which);
    if (stat(path, &theirs) < 0)
        die_errno("stat", path);
    snprintf(path, sizeof path, "/proc/self/ns/%s", which);
    if (stat(path, &ours) < 0)
        die_errno("stat", path);
    return theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev;
}

/* Leave this process the way the command died, so the harness sees the
 * command's own status. A signal that would dump core must not: the
 * command already did, or was meant to. */
static noreturn void exit_like(int status)
{
    if (WIFEXITED(status))
        exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit no_core = { 0, 0 };
        sigset_t only;
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigemptyset(&only);
        sigaddset(&only, sig);
        sigprocmask(SIG_UNBLOCK, &only, NULL);
        raise(sig);
    }
    exit(125);
}

/* The command as an ordinary user: no supplementary groups, every uid and
 * gid set (so the kernel clears every capability at the uid change), and
 * no_new_privs, so no set-uid program or file capability gives any back. */
static void become(uid_t uid, gid_t gid, const char *command)
{
    if (setgroups(0, NULL) < 0)
        die_errno("setgroups", command);
    if (setresgid(gid, gid, gid) < 0)
        die_errno("setresgid", command);
    if (setresuid(uid, uid, uid) < 0)
        die_errno("setresuid", command);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die_errno("prctl PR_SET_NO_NEW_PRIVS", command);
}

static int exec_in(pid_t outer, int pidfd, char **argv, uid_t uid, gid_t gid)
{
    int report[2], status, exec_errno;
    char line[32];
    pid_t child;
    ssize_t r;

    die_with_parent(0);
    if (!same_namespace(outer, "user")) {
        enter_namespace(outer, "user", CLONE_NEWUSER);
        keep_capabilities_across_exec();
    }
    enter_namespace(outer, "net", CLONE_NEWNET);
    enter_namespace(outer, "pid_for_children", CLONE_NEWPID);

    /* A close-on-exec pipe tells us whether execvp() worked. */
    if (pipe2(report, O_CLOEXEC) < 0)
        die_errno("pipe2", NULL);
    child = fork();
    if (child < 0)
        die_errno("fork", argv[0]);
    if (child == 0) {
        close(report[0]);
        close(pidfd);
        if (uid != (uid_t)-1)
            become(uid, gid, argv[0]);
        execvp(argv[0], argv);
        exec_errno = errno;
        if (write(report[1], &exec_errno, sizeof exec_errno) < 0)
            _exit(127);
        _exit(127);
    }
    close(report[1]);
    r = read(report[0], &exec_errno, sizeof exec_errno);
    close(report[0]);
    if (r == (ssize_t)sizeof exec_errno) {
        waitpid(child, NULL, 0);
        errno = exec_errno;
        fprintf(stderr, "flhost: exec(%s): %s\n", argv[0], strerror(exec_errno));
        snprintf(line, sizeof line, "-1\n");
        if (write(pidfd, line, strlen(line)) < 0)
            exit(127);
        exit(127);
    }

    snprintf(line, sizeof line, "%ld\n", (long)child);
    if (write(pidfd, line, strlen(line)) < 0)
        die_errno("write", "pid descriptor");
    close(pidfd);

    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            die_errno("waitpid", argv[0]);
    exit_like(status);
}

int main(int argc, char **argv)
{
    set_progname(argv[0]);
    if (argc == 3 && strcmp(argv[1], "keep") == 0)
        return keep(parse_pid(argv[2], "keep"), 0);
    if (argc == 4 && strcmp(argv[1], "keep") == 0)
        return keep(parse_pid(argv[2], "keep"), parse_pid(argv[3], "USERNS_PID"));
    if (argc >= 6 && strcmp(argv[1], "exec") == 0 && strcmp(argv[4], "--") == 0) {
        pid_t outer = parse_pid(argv[2], "exec");
        int pidfd = (int)parse_pid(argv[3], "PIDFD");
        return exec_in(outer, pidfd, argv + 5, (uid_t)-1, (gid_t)-1);
    }
    if (argc >= 8 && strcmp(argv[1], "exec") == 0 && strcmp(argv[6], "--") == 0) {
        pid_t outer = parse_pid(argv[2], "exec");
        int pidfd = (int)parse_pid(argv[3], "PIDFD");
        /* parse_pid's range suits ids too; uid 0 is not asked for this way. */
        uid_t uid = (uid_t)parse_pid(argv[4], "UID");
        gid_t gid = (gid_t)parse_pid(argv[5], "GID");
        return exec_in(outer, pidfd, argv + 7, uid, gid);
    }
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    die_usage("expected 'keep PARENT_PID [USERNS_PID]' or "
              "'exec OUTER_PID PIDFD [UID GID] -- COMMAND...'");
}
