/*
 * flhost: the harness's isolated hosts, in the kernel's terms.
 *
 *   flhost keep PARENT_PID [USERNS_PID]
 *       Make a host: new network and PID namespaces, loopback up (and, when
 *       not run as root, a user namespace first: see below). Prints
 *       "ready OUTER_PID INIT_PID" on stdout (when the host's init could
 *       not mount its own /proc, see mount_host_proc, the line goes on with
 *       " noproc CALL: strerror"), then serves requests on stdin, a
 *       SOCK_SEQPACKET unix socket, until end of file there (the harness
 *       closing the host) or until its init dies, and exits, taking the
 *       host with it; each command's wait status is written first (see
 *       serve_spawn). A request
 *       is one message, native ints first, the first its kind:
 *         socket {1, family, type, protocol}: answered with one int, 0 or
 *           the errno of socket(2), and the socket made in the host
 *           attached (SCM_RIGHTS). A socket stays in the network namespace
 *           it was made in, so the harness gets clients on the host
 *           without joining it, which it cannot do without root.
 *         spawn {2, uid, gid, argc, envc} + strings: see serve_spawn. The
 *           command is forked from here, inside the host; its status goes
 *           to the harness when it is reaped here.
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
 * PID and mount namespaces are then that user namespace's, and the
 * commands the keeper forks run as the caller with every capability over
 * the host (ambient capabilities). Not as the user
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
 * the init is in (the commands the keeper forks keep the machine's),
 * and that receives the machine's mounts but sends none back.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"

static const char usage_text[] =
    "usage: flhost keep PARENT_PID [USERNS_PID]\n";

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

/* Entering a user namespace gives every capability in it, and execve(2)
 * by a uid other than 0 would drop them: made ambient, they are kept (by
 * the keeper's children too, which inherit them). */
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

/* The keeper's requests (see the top of this file), each one message on
 * its stdin, a SOCK_SEQPACKET socket: native ints first, the first of them
 * the kind of request. */
enum { REQUEST_SOCKET = 1, REQUEST_SPAWN = 2 };

/* A spawned command's status descriptor, written once it is reaped. */
struct spawned {
    pid_t pid;
    int status_fd;
};

static struct spawned *spawned;
static size_t n_spawned, spawned_room;

/* Reply on the control socket, with descriptor fd attached when >= 0. A
 * failed reply is the harness's to notice (it reads an end of file). */
static void reply(const void *data, size_t len, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    struct cmsghdr *cmsg;
    struct iovec iov;

    memset(&msg, 0, sizeof msg);
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    while (sendmsg(STDIN_FILENO, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* {family, type, protocol}: a socket made in the host, or socket(2)'s errno. */
static void serve_socket(const int *request)
{
    int fd = socket(request[0], request[1] | SOCK_CLOEXEC, request[2]);
    int err = fd < 0 ? errno : 0;

    reply(&err, sizeof err, fd);
    if (fd >= 0)
        close(fd);
}

/* What a spawned child tells the keeper when it cannot become the command:
 * the errno and the call that failed. Nothing arrives when exec worked
 * (the pipe is close-on-exec). */
struct spawn_failure {
    int err;
    char call[28];
};

static noreturn void child_fails(int report, const char *call)
{
    struct spawn_failure f = { errno, "" };

    snprintf(f.call, sizeof f.call, "%s", call);
    if (write(report, &f, sizeof f) < 0)
        _exit(127);
    _exit(127);
}

/* The command as an ordinary user: no supplementary groups, every uid and
 * gid set (so the kernel clears every capability at the uid change), and
 * no_new_privs, so no set-uid program or file capability gives any back. */
static void become(uid_t uid, gid_t gid, int report)
{
    if (setgroups(0, NULL) < 0)
        child_fails(report, "setgroups");
    if (setresgid(gid, gid, gid) < 0)
        child_fails(report, "setresgid");
    if (setresuid(uid, uid, uid) < 0)
        child_fails(report, "setresuid");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fails(report, "prctl(PR_SET_NO_NEW_PRIVS)");
}

static void remember_spawned(pid_t pid, int status_fd)
{
    if (n_spawned == spawned_room) {
        size_t room = spawned_room ? 2 * spawned_room : 16;
        struct spawned *grown = realloc(spawned, room * sizeof *grown);
        if (grown == NULL)
            die_errno("realloc", "table of spawned commands");
        spawned = grown;
        spawned_room = room;
    }
    spawned[n_spawned].pid = pid;
    spawned[n_spawned].status_fd = status_fd;
    n_spawned++;
}

/* A reaped child's wait status, to the harness: on its status descriptor
 * when it was a spawned command. Returns 0 when pid was not one (the init). */
static int report_reaped(pid_t pid, int status)
{
    for (size_t i = 0; i < n_spawned; i++) {
        if (spawned[i].pid != pid)
            continue;
        /* EPIPE when the harness has stopped listening (SIGPIPE is blocked
         * here): nothing to do then. */
        if (write(spawned[i].status_fd, &status, sizeof status) < 0)
            (void)0;
        close(spawned[i].status_fd);
        spawned[i] = spawned[--n_spawned];
        return 1;
    }
    return 0;
}

/* {kind, uid, gid, argc, envc} then 1 + argc + envc NUL-terminated strings
 * (the working directory, empty for "/", the arguments, the environment),
 * and four descriptors attached: the command's stdin, stdout, stderr, and
 * the one its wait status is written to once it is reaped. The command is
 * forked from here, so it is in the host's network and PID namespaces
 * already (and its user namespace, with the capabilities made ambient at
 * start); it inherits what else the keeper had when it started (umask,
 * rlimits, nice, affinity, cgroup). Replies {errno, pid, call}: errno 0
 * once exec worked, with a pidfd of the command attached; otherwise the
 * call that failed, and no command runs. */
struct spawn_answer {
    int err;
    int pid;
    char call[28];
};

static void answer_failed(struct spawn_answer *answer, int err, const char *call)
{
    answer->err = err;
    snprintf(answer->call, sizeof answer->call, "%s", call);
}

/* Where execvp would find the program, in the command's own PATH: 1 and
 * the path in `path`, or 0 and the errno execvp would give. */
static int find_program(const char *name, char *const envp[], char *path, size_t size,
                        int *err)
{
    const char *dirs = "/bin:/usr/bin", *dir, *colon;
    int denied = 0;

    if (strchr(name, '/') != NULL) {
        snprintf(path, size, "%s", name);
        return 1;
    }
    for (size_t i = 0; envp[i] != NULL; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            dirs = envp[i] + 5;
    for (dir = dirs; ; dir = colon + 1) {
        colon = strchr(dir, ':');
        int n = colon ? (int)(colon - dir) : (int)strlen(dir);
        struct stat st;
        /* An empty entry is the working directory, as for execvp. */
        snprintf(path, size, "%.*s%s%s", n, dir, n ? "/" : "", name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(path, X_OK) == 0)
                return 1;
            denied = 1;
        }
        if (colon == NULL)
            break;
    }
    *err = denied ? EACCES : ENOENT;
    return 0;
}

/* A program the kernel would not run (no #! line, no ELF header), run as
 * execvp runs it: as a script of /bin/sh. posix_spawn's errno. */
static int spawn_as_script(pid_t *child, const char *path,
                           const posix_spawn_file_actions_t *actions,
                           const posix_spawnattr_t *attr, char *const argv[],
                           char *const envp[])
{
    size_t argc = 0;
    char **script_argv;
    int err;

    while (argv[argc] != NULL)
        argc++;
    script_argv = calloc(argc + 2, sizeof *script_argv);
    if (script_argv == NULL)
        return ENOMEM;
    script_argv[0] = (char *)"/bin/sh";
    script_argv[1] = (char *)path;
    for (size_t i = 1; i < argc; i++)
        script_argv[i + 1] = argv[i];
    err = posix_spawn(child, "/bin/sh", actions, attr, script_argv, envp);
    free(script_argv);
    return err;
}

/* The command the cheap way: posix_spawn (a vfork on a stack of its own;
 * a fork made each start 0.5 ms slower here). Its pid, or -1 with the
 * failure in answer. */
static pid_t spawn_command(char *const argv[], char *const envp[], const char *cwd,
                           const int *fds, struct spawn_answer *answer)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    char path[PATH_MAX];
    struct stat st;
    sigset_t none;
    pid_t child;
    int err = 0;

    if (!find_program(argv[0], envp, path, sizeof path, &err)) {
        answer_failed(answer, err, "exec");
        return -1;
    }
    if (posix_spawn_file_actions_init(&actions) != 0) {
        answer_failed(answer, ENOMEM, "posix_spawn set-up");
        return -1;
    }
    for (int i = 0; i < 3 && err == 0; i++)
        err = posix_spawn_file_actions_adddup2(&actions, fds[i], i);
    if (err == 0 && cwd[0] != '\0')
        err = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    if (err == 0)
        err = posix_spawnattr_init(&attr);
    if (err != 0) {
        posix_spawn_file_actions_destroy(&actions);
        answer_failed(answer, err, "posix_spawn set-up");
        return -1;
    }
    /* Signals unblocked; dispositions are the keeper's, as after fork. */
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    err = posix_spawn(&child, path, &actions, &attr, argv, envp);
    if (err == ENOEXEC)
        err = spawn_as_script(&child, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
        /* Its file actions fail with the same errno: name the chdir. */
        int no_dir = cwd[0] != '\0' && (stat(cwd, &st) < 0 || !S_ISDIR(st.st_mode));
        answer_failed(answer, err, no_dir ? "chdir" : "exec");
        return -1;
    }
    return child;
}

/* The command as another user (root only): a fork, for become() between
 * the fork and the exec, which posix_spawn cannot do. */
static pid_t fork_command_as(uid_t uid, gid_t gid, char *const argv[], char *const envp[],
                             const char *cwd, const int *fds, struct spawn_answer *answer)
{
    struct spawn_failure failure;
    int report[2];
    sigset_t none;
    pid_t child;
    ssize_t r;

    if (pipe2(report, O_CLOEXEC) < 0) {
        answer_failed(answer, errno, "pipe2");
        return -1;
    }
    child = fork();
    if (child < 0) {
        answer_failed(answer, errno, "fork");
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (child == 0) {
        close(report[0]);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int i = 0; i < 3; i++)
            if (dup2(fds[i], i) < 0)
                child_fails(report[1], "dup2");
        if (cwd[0] != '\0' && chdir(cwd) < 0)
            child_fails(report[1], "chdir");
        become(uid, gid, report[1]);
        environ = (char **)envp;
        execvp(argv[0], argv);
        child_fails(report[1], "exec");
    }
    close(report[1]);
    do
        r = read(report[0], &failure, sizeof failure);
    while (r < 0 && errno == EINTR);
    close(report[0]);
    if (r == (ssize_t)sizeof failure) {
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        failure.call[sizeof failure.call - 1] = '\0';
        answer_failed(answer, failure.err, failure.call);
        return -1;
    }
    return child;
}

static void serve_spawn(const int *header, char *strings, size_t len, const int *fds)
{
    struct spawn_answer answer = { 0, 0, "" };
    uid_t uid = (uid_t)header[1];
    gid_t gid = (gid_t)header[2];
    size_t argc = (size_t)header[3], envc = (size_t)header[4], i, n = 0;
    char **argv = NULL, **envp = NULL, *p = strings, *end = strings + len, *cwd = strings;
    int pidfd = -1, kept = 0;
    pid_t child;

    /* Each string is at least its NUL, and the last one ends the message. */
    if (argc == 0 || 1 + argc + envc > len || end[-1] != '\0') {
        answer_failed(&answer, EINVAL, "spawn request");
        goto out;
    }
    argv = calloc(argc + 1, sizeof *argv);
    envp = calloc(envc + 1, sizeof *envp);
    if (argv == NULL || envp == NULL) {
        answer_failed(&answer, ENOMEM, "calloc");
        goto out;
    }
    for (p += strlen(cwd) + 1; p < end && n < argc + envc; p += strlen(p) + 1, n++)
        *(n < argc ? &argv[n] : &envp[n - argc]) = p;
    if (n != argc + envc || p != end) {
        answer_failed(&answer, EINVAL, "spawn request");
        goto out;
    }
    child = uid == (uid_t)-1 ? spawn_command(argv, envp, cwd, fds, &answer)
                             : fork_command_as(uid, gid, argv, envp, cwd, fds, &answer);
    if (child < 0)
        goto out;
    /* The child cannot be reaped before this (only this loop reaps), so
     * the pidfd is the command's. */
    pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (pidfd < 0) {
        /* The harness could not signal it safely: it is not started. */
        answer_failed(&answer, errno, "pidfd_open");
        kill(child, SIGKILL);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        goto out;
    }
    answer.pid = child;
    remember_spawned(child, fds[3]);
    kept = 1; /* the status descriptor is the table's now */
out:
    reply(&answer, sizeof answer, pidfd);
    if (pidfd >= 0)
        close(pidfd);
    for (i = 0; i < (kept ? 3 : 4); i++)
        close(fds[i]);
    free(argv);
    free(envp);
}

/* Reap what has exited without waiting; returns 0 once the init is gone
 * (the host with it), 1 otherwise. */
static int reap_exited(pid_t init)
{
    int status, host_up = 1;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (!report_reaped(pid, status) && pid == init)
            host_up = 0;
    return host_up;
}

/* The largest request: argv and environment of a command. */
#define REQUEST_MAX (256 * 1024)
#define REQUEST_FDS 4

/* One message from the harness; 0 once it has closed the host (end of
 * file, or the socket failing), 1 otherwise. */
static int serve_request(void)
{
    static int request[REQUEST_MAX / sizeof(int)];
    union {
        char buf[CMSG_SPACE(REQUEST_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    int fds[REQUEST_FDS], nfds = 0, err = EINVAL, kind;
    struct cmsghdr *cmsg;
    struct msghdr msg;
    struct iovec iov;
    ssize_t r;

    memset(&msg, 0, sizeof msg);
    iov.iov_base = request;
    iov.iov_len = sizeof request;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    r = recvmsg(STDIN_FILENO, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN;
    if (r == 0)
        return 0;
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
            if (nfds < REQUEST_FDS)
                fds[nfds++] = fd;
            else
                close(fd);
        }
    }
    kind = r >= (ssize_t)sizeof(int) ? request[0] : 0;
    if (msg.msg_flags & MSG_TRUNC) {
        err = E2BIG;
    } else if (msg.msg_flags & MSG_CTRUNC) {
        err = EMFILE; /* the descriptors it brought did not all arrive */
    } else if (r == 4 * sizeof(int) && kind == REQUEST_SOCKET && nfds == 0) {
        serve_socket(request + 1);
        return 1;
    } else if (r > 5 * (ssize_t)sizeof(int) && kind == REQUEST_SPAWN &&
               nfds == REQUEST_FDS && request[3] > 0 && request[4] >= 0) {
        serve_spawn(request, (char *)(request + 5), (size_t)r - 5 * sizeof(int), fds);
        return 1;
    }
    /* Not a request this keeper knows: say so, so that no asker waits. */
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    struct spawn_answer answer = { 0, 0, "" };
    answer_failed(&answer, err, "request");
    reply(&answer, kind == REQUEST_SOCKET ? sizeof err : sizeof answer, -1);
    return 1;
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

/* Whether that process's namespace of this kind is ours already: setns()
 * into one's own user namespace fails (EINVAL). */
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

static int keep(pid_t parent, pid_t userns_of)
{
    char procfs[160];
    int report[2], status, children, own_user_namespace = 0, init_up = 1;
    struct pollfd watch[2];
    sigset_t chld, blocked;
    pid_t init, pid;
    ssize_t r;

    die_with_parent(parent);
    if (userns_of > 0 && !same_namespace(userns_of, "user")) {
        enter_namespace(userns_of, "user", CLONE_NEWUSER);
        own_user_namespace = 1;
    } else if (geteuid() != 0) {
        enter_new_user_namespace();
        own_user_namespace = 1;
    }
    /* Commands spawned here run as the caller, not as the namespace's
     * root: without ambient capabilities exec would drop every one. */
    if (own_user_namespace)
        keep_capabilities_across_exec();
    if (unshare(CLONE_NEWNET | CLONE_NEWPID) < 0)
        die_errno("unshare", "CLONE_NEWNET|CLONE_NEWPID");
    loopback_up();
    /* Not to pin the folder it was started in (a spare host outlives the
     * test that was running then): each command names its own. */
    if (chdir("/") < 0)
        die_errno("chdir", "/");

    /* Children are reaped in the loop below, when the signalfd says so
     * (SIGCHLD at its default: ignored, the kernel would reap them).
     * SIGPIPE is blocked, not ignored, so that a status pipe nobody reads
     * any more is an EPIPE here and commands still start with it at its
     * default (a child's mask is reset, its dispositions are inherited).
     * The mask is set whole: the harness's thread that started us may
     * have had signals blocked, and we would have inherited them. */
    if (signal(SIGCHLD, SIG_DFL) == SIG_ERR)
        die_errno("signal", "SIGCHLD");
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGPIPE);
    Sigprocmask(SIG_SETMASK, &blocked, NULL);
    watch[1].fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (watch[1].fd < 0)
        die_errno("signalfd", "SIGCHLD");
    watch[1].events = POLLIN;
    watch[0].fd = STDIN_FILENO;
    watch[0].events = POLLIN;

    if (pipe2(report, O_CLOEXEC) < 0)
        die_errno("pipe2", "host init's report");
    init = fork();
    if (init < 0)
        die_errno("fork", "host init");
    if (init == 0) {
        close(report[0]);
        close(watch[1].fd);
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

    /* The harness holds our stdin open for the host's lifetime. */
    for (;;) {
        if (poll(watch, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("poll", "control socket and SIGCHLD");
        }
        if (watch[1].revents) {
            struct signalfd_siginfo info;
            while (read(watch[1].fd, &info, sizeof info) > 0)
                ;
            if (!reap_exited(init)) {
                init_up = 0; /* the init died: so did the host */
                break;
            }
        }
        if (watch[0].revents && !serve_request())
            break;
    }

    /* Everything in the host dies with its init; each command's status
     * still goes to the harness (killed by SIGKILL, most of them). */
    if (init_up)
        kill(init, SIGKILL);
    for (children = 1; children;) {
        pid = waitpid(-1, &status, 0);
        if (pid > 0)
            report_reaped(pid, status);
        else if (errno != EINTR)
            children = 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    set_progname(argv[0]);
    if (argc == 3 && strcmp(argv[1], "keep") == 0)
        return keep(parse_pid(argv[2], "keep"), 0);
    if (argc == 4 && strcmp(argv[1], "keep") == 0)
        return keep(parse_pid(argv[2], "keep"), parse_pid(argv[3], "USERNS_PID"));
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    die_usage("expected 'keep PARENT_PID [USERNS_PID]'");
}
