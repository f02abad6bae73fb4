#!/usr/bin/env python3
"""Measurement driver for bench/run.sh (Python standard library only).

Subcommands (each adds its figures to the JSON file given with --results):

  dnscheck SERVER NAME TYPE      one DNS query over UDP; prints the answers, exit 1 if none
  fsync    --dir DIR             write+fsync rates of the file system holding the queues
  bench    --count-file F ...    smtp-source -> target -> smtp-sink runs, interleaved
  queue    --addr A ... -- CMD   homing with QUEUE_N messages for a dead destination:
                                 RSS, spool size, restart time after SIGKILL
  report                         the final summary table from the results file

Rates: "accept" = messages / time until smtp-source exits (every message got its 250);
"end-to-end" = messages / time until the smtp-sink counter grew by that many.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

SENDER = 'bench@bench.test'


def log(msg):
    print(msg, flush=True)


def die(msg):
    print(f"FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ---- results file ---------------------------------------------------------------

def load_results(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_results(path, key, value):
    res = load_results(path)
    res[key] = value
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(res, f, indent=1)
    os.replace(tmp, path)


# ---- small probes -----------------------------------------------------------------

def sink_count(path):
    """Last `mesg=N` of an `smtp-sink -c` counter file (it rewrites one line with CR)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256))
            m = re.findall(rb'mesg=(\d+)', f.read())
    except FileNotFoundError:
        return 0
    return int(m[-1]) if m else 0


def source_count(path):
    """Last number of an `smtp-source -c` counter file (DATA commands completed)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64))
            m = re.findall(rb'(\d+)', f.read())
    except FileNotFoundError:
        return 0
    return int(m[-1]) if m else 0


def cpu_times():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle+iowait


def disk_stat_path(path):
    """/sys/.../stat of the whole disk holding `path` (flushes are counted per disk), or None."""
    try:
        st = os.stat(path)
        dev = os.path.realpath(f'/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}')
        if os.path.exists(os.path.join(dev, 'partition')):
            dev = os.path.dirname(dev)
        stat = os.path.join(dev, 'stat')
        return stat if len(open(stat).read().split()) >= 17 else None
    except OSError:
        return None


def disk_counters(stat_path):
    """(flush requests completed, bytes written) of a disk, or None.

    Fields of /sys/block/DEV/stat (Documentation/block/stat.rst), 0-based: 6 sectors
    written, 11-14 discards (requests, merges, sectors, ms), 15 flush requests."""
    if not stat_path:
        return None
    try:
        v = [int(x) for x in open(stat_path).read().split()]
    except (OSError, ValueError):
        return None
    return v[15], v[6] * 512


def proc_cpu_s(pid):
    """utime+stime of a process in seconds, or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_s(root):
    """CPU seconds used by a process and all its descendants, the reaped ones included
    (utime+stime+cutime+cstime summed over the tree), or None. Its difference between two
    samples is the CPU the whole tree spent in between, even if processes came and went."""
    if not root:
        return None
    ppid, cpu = {}, {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                x = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        ppid[int(d)] = int(x[1])
        cpu[int(d)] = sum(int(v) for v in x[11:15])
    if root not in cpu:
        return None
    children = {}
    for p, pp in ppid.items():
        children.setdefault(pp, []).append(p)
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0)
        todo.extend(children.get(p, []))
    return total / os.sysconf('SC_CLK_TCK')


def proc_alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        return state not in ('Z', 'X')
    except OSError:
        return False


def proc_status_kib(pid, key):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def count_dir(path, suffix=None):
    n = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if suffix is None or e.name.endswith(suffix):
                    n += 1
    except FileNotFoundError:
        pass
    return n


def queue_depth(kind, qdir):
    """Messages still queued by an MTA: Postfix queue files, or homing's queue/*.msg."""
    if kind == 'postfix':
        n = 0
        for sub in ('maildrop', 'incoming', 'active', 'deferred', 'hold'):
            for _, _, files in os.walk(os.path.join(qdir, sub)):
                n += len(files)
        return n
    if kind == 'homing':
        return count_dir(os.path.join(qdir, 'queue'), '.msg')
    return 0


def tree_size(path):
    files = apparent = allocated = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except FileNotFoundError:
                continue
            files += 1
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return files, apparent, allocated


def human_size(n):
    return f"{n / 1048576:.1f} MiB"


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


# ---- dnscheck ---------------------------------------------------------------------

QTYPES = {'A': 1, 'NS': 2, 'CNAME': 5, 'SOA': 6, 'MX': 15, 'TXT': 16, 'AAAA': 28}
RCODES = {0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED'}


def dns_name(msg, off):
    labels, jumped, end = [], False, off
    for _ in range(128):
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped, off = True, ptr
            continue
        labels.append(msg[off + 1:off + 1 + n].decode('ascii', 'replace'))
        off += 1 + n
    return '.'.join(labels) + '.', (end if jumped else off)


def dns_query(server, name, qtype, timeout=2.0, tries=3):
    host, port = server.rsplit(':', 1)
    qid = random.randrange(65536)
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(label)]) + label.encode() for label in name.rstrip('.').split('.')) + b'\0'
    q += struct.pack('>HH', QTYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        for _ in range(tries):
            s.sendto(q, (host, int(port)))
            try:
                msg = s.recv(4096)
            except socket.timeout:
                continue
            if len(msg) >= 12 and struct.unpack('>H', msg[:2])[0] == qid:
                break
        else:
            return 'TIMEOUT', []
    finally:
        s.close()
    _, flags, qd, an, _, _ = struct.unpack('>HHHHHH', msg[:12])
    off = 12
    for _ in range(qd):
        _, off = dns_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        rname, off = dns_name(msg, off)
        rtype, _, _, rdlen = struct.unpack('>HHIH', msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            answers.append(socket.inet_ntoa(rdata))
        elif rtype == 15:
            answers.append(f"{struct.unpack('>H', rdata[:2])[0]} {dns_name(msg, off + 2)[0]}")
        else:
            answers.append(f"type{rtype} {rdata.hex()}")
        off += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), answers


def cmd_dnscheck(a):
    rcode, answers = dns_query(a.server, a.name, a.type)
    log(f"  {a.name} {a.type} @{a.server}: {rcode} {' '.join(answers)}")
    if a.expect and a.expect not in ' '.join(answers):
        die(f"DNS {a.name} {a.type} @{a.server}: expected {a.expect!r}, got {rcode} {answers}")
    sys.exit(0 if answers else 1)


# ---- fsync ------------------------------------------------------------------------

def cmd_fsync(a):
    d = tempfile.mkdtemp(prefix='fsync-', dir=a.dir)
    buf = b'x' * 4096
    res = {}
    try:
        fn = os.path.join(d, 'one')
        fd = os.open(fn, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, buf)
        os.fsync(fd)
        t = time.monotonic()
        for _ in range(a.n):
            os.pwrite(fd, buf, 0)
            os.fdatasync(fd)
        res['overwrite_fdatasync'] = a.n / (time.monotonic() - t)
        os.close(fd)
        # the queue-file pattern: new file, write, fsync, rename, fsync the directory
        qd = os.path.join(d, 'q')
        os.mkdir(qd)
        dfd = os.open(qd, os.O_RDONLY)
        t = time.monotonic()
        for i in range(a.n):
            p = os.path.join(qd, f'{i}.tmp')
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, buf)
            os.fsync(fd)
            os.close(fd)
            os.rename(p, os.path.join(qd, f'{i}.msg'))
            os.fsync(dfd)
        res['new_file_fsync_rename_fsync_dir'] = a.n / (time.monotonic() - t)
        os.close(dfd)
    finally:
        for root, dirs, files in os.walk(d, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for x in dirs:
                os.rmdir(os.path.join(root, x))
        os.rmdir(d)
    log(f"  write 4 KiB + fdatasync, same file:              {res['overwrite_fdatasync']:8.0f} /s")
    log(f"  new file: write 4 KiB+fsync+rename+fsync(dir):   {res['new_file_fsync_rename_fsync_dir']:8.0f} /s")
    save_results(a.results, 'fsync', res)


# ---- bench ------------------------------------------------------------------------

def wait_drained(name, kind, qdir, timeout):
    t = time.monotonic()
    shown = False
    while True:
        n = queue_depth(kind, qdir)
        if n == 0:
            return
        if time.monotonic() - t > timeout:
            die(f"{name}: {n} messages still queued in {qdir} after {timeout:.0f} s "
                f"(previous run not delivered)")
        if not shown:
            log(f"  waiting for {name}'s queue to drain ({n} messages left)")
            shown = True
        time.sleep(0.2)


def gone(label, pid):
    """A note for failure messages when the MTA's process has died."""
    if pid and not proc_alive(pid):
        return f" -- {label.split()[0]} (pid {pid}) is not running any more: see its log"
    return ""


def one_run(a, label, addr, size, pid=None, kind=None, qdir=None):
    """One smtp-source run; returns a dict of figures, or exits with a diagnosis."""
    base = sink_count(a.count_file)
    with tempfile.TemporaryDirectory(prefix='bench-run-') as tmp:
        ctr, err = os.path.join(tmp, 'counter'), os.path.join(tmp, 'stderr')
        cmd = ['smtp-source', '-c', '-s', str(a.sess), '-m', str(a.n), '-l', str(size),
               '-f', SENDER, '-t', a.to, addr]
        c0, i0 = cpu_times()
        pc0 = tree_cpu_s(pid)
        d0 = disk_counters(a.disk_stat)
        t0 = time.monotonic()
        with open(ctr, 'wb') as fo, open(err, 'wb') as fe:
            p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        t_acc = t_e2e = None
        last_n, last_change = base, t0
        next_progress = t0 + 10
        deadline = t0 + a.timeout
        try:
            while True:
                now = time.monotonic()
                if t_acc is None and p.poll() is not None:
                    t_acc = now
                    if p.returncode != 0:
                        with open(err, 'rb') as f:
                            msg = f.read().decode(errors='replace').strip()[-600:]
                        die(f"{label}: smtp-source exited {p.returncode} after {source_count(ctr)}/{a.n} "
                            f"messages: {msg}{gone(label, pid)}")
                n = sink_count(a.count_file)
                if n != last_n:
                    last_n, last_change = n, now
                if t_e2e is None and n >= base + a.n:
                    t_e2e = now
                if t_acc is not None and t_e2e is not None:
                    break
                if now > next_progress:
                    q = f", {queue_depth(kind, qdir)} queued" if kind else ""
                    log(f"    {now - t0:5.0f} s: accepted {source_count(ctr)}/{a.n}, "
                        f"delivered {n - base}/{a.n}{q}")
                    next_progress = now + 10
                if now > deadline or (t_acc is not None and now - last_change > a.stall):
                    q = f"; {queue_depth(kind, qdir)} still queued in {qdir}" if kind else ""
                    why = "timeout" if now > deadline else f"no delivery for {a.stall:.0f} s"
                    die(f"{label}: {why}: accepted {source_count(ctr)}/{a.n}, "
                        f"sink got {n - base}/{a.n}{q}{gone(label, pid)}")
                time.sleep(0.01)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        c1, i1 = cpu_times()
        pc1 = tree_cpu_s(pid)
        d1 = disk_counters(a.disk_stat)
        with open(err, 'rb') as f:
            warnings = [x for x in f.read().decode(errors='replace').splitlines() if x.strip()]
    time.sleep(1.0)  # late arrivals beyond N would be duplicates
    extra = sink_count(a.count_file) - base - a.n
    r = {
        'label': label, 'size': size, 'n': a.n, 'sessions': a.sess,
        'accept_s': t_acc - t0, 'e2e_s': t_e2e - t0,
        'accept': a.n / (t_acc - t0), 'e2e': a.n / (t_e2e - t0),
        'cpu_busy_pct': 100.0 * (1 - (i1 - i0) / max(1, c1 - c0)),
        'extra_deliveries': extra, 'source_warnings': len(warnings),
    }
    if pc0 is not None and pc1 is not None:
        r['mta_cpu_s'] = pc1 - pc0
        r['mta_cpu_ms_per_msg'] = 1000 * (pc1 - pc0) / a.n
    if d0 and d1:
        r['disk_flushes_per_msg'] = (d1[0] - d0[0]) / a.n
        r['disk_kib_written_per_msg'] = (d1[1] - d0[1]) / 1024 / a.n
    line = (f"    accept {r['accept']:7.0f} msg/s   end-to-end {r['e2e']:7.0f} msg/s   "
            f"({a.n} msgs: accepted in {r['accept_s']:.2f} s, delivered in {r['e2e_s']:.2f} s; "
            f"CPU busy {r['cpu_busy_pct']:.0f}% of {os.cpu_count()} cores")
    if 'mta_cpu_s' in r:
        line += f"; {label.split()[0]}'s processes: {r['mta_cpu_s']:.1f} CPU-s = {r['mta_cpu_ms_per_msg']:.2f} ms/msg"
    log(line + ")")
    if 'disk_flushes_per_msg' in r:
        log(f"    disk (whole machine) per message: {r['disk_flushes_per_msg']:.2f} cache flushes, "
            f"{r['disk_kib_written_per_msg']:.1f} KiB written")
    if warnings:
        log(f"    WARNING: smtp-source printed {len(warnings)} lines, first: {warnings[0]}")
    if extra > 0:
        log(f"    WARNING: the sink got {extra} messages more than were sent (duplicate deliveries?)")
    return r


def cmd_bench(a):
    a.disk_stat = disk_stat_path(a.disk_dir) if a.disk_dir else None
    targets = [{'name': n, 'addr': ad, 'kind': q.split(':', 1)[0], 'qdir': q.split(':', 1)[1],
                'pid_file': pf if pf != '-' else None}
               for n, ad, q, pf in (a.target or [])]
    results = load_results(a.results).get('bench', {})
    for size in a.sizes:
        sl = size_label(size)
        cases = results.setdefault(str(size), {})
        if a.ceiling:
            log(f"== {sl}: ceiling smtp-source -> smtp-sink ({a.ceiling})")
            r = one_run(a, f"ceiling {sl}", a.ceiling, size)
            cases['ceiling'] = {'runs': [r]}
        order = list(targets)
        for run in range(a.runs):
            for t in order:
                log(f"== {sl}: {t['name']} ({t['addr']}), run {run + 1}/{a.runs}")
                wait_drained(t['name'], t['kind'], t['qdir'], a.timeout)
                pid = read_pid(t['pid_file']) if t['pid_file'] else None
                r = one_run(a, f"{t['name']} {sl}", t['addr'], size, pid, t['kind'], t['qdir'])
                cases.setdefault(t['name'], {'runs': []})['runs'].append(r)
                results[str(size)] = cases
                save_results(a.results, 'bench', results)
            order.reverse()  # alternate who goes first
        for t in targets:
            runs = cases[t['name']]['runs']
            cases[t['name']]['accept'] = statistics.median(r['accept'] for r in runs)
            cases[t['name']]['e2e'] = statistics.median(r['e2e'] for r in runs)
            if all('mta_cpu_ms_per_msg' in r for r in runs):
                cases[t['name']]['cpu_ms_per_msg'] = statistics.median(r['mta_cpu_ms_per_msg'] for r in runs)
            if all('disk_flushes_per_msg' in r for r in runs):
                cases[t['name']]['flushes_per_msg'] = statistics.median(r['disk_flushes_per_msg'] for r in runs)
            log(f"  MEDIAN {t['name']} {sl} ({len(runs)} runs): accept {cases[t['name']]['accept']:.0f} msg/s, "
                f"end-to-end {cases[t['name']]['e2e']:.0f} msg/s")
        if 'ceiling' in cases:
            cases['ceiling']['e2e'] = cases['ceiling']['runs'][0]['e2e']
        results[str(size)] = cases
        save_results(a.results, 'bench', results)
    save_results(a.results, 'bench_params', {'n': a.n, 'runs': a.runs, 'sessions': a.sess, 'to': a.to})


# ---- queue ------------------------------------------------------------------------

ANSI = re.compile(r'\x1b\[[0-9;]*m')


def wait_port(addr, timeout, pid=None):
    """Time until addr answers with an SMTP 220 greeting, or None."""
    host, port = addr.rsplit(':', 1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pid and not proc_alive(pid):
            return None
        try:
            with socket.create_connection((host, int(port)), timeout=1) as s:
                s.settimeout(max(1.0, timeout - (time.monotonic() - t0)))
                if s.recv(512).startswith(b'220'):
                    s.sendall(b'QUIT\r\n')
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.01)
    return None


def port_free(addr):
    host, port = addr.rsplit(':', 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
        return False
    except OSError:
        return True


def cmd_queue(a):
    pid = read_pid(a.pid_file)
    if not pid or not proc_alive(pid):
        die(f"queue test: homing is not running (pid file {a.pid_file})")
    spool = a.spool
    qdir = os.path.join(spool, 'queue')
    left = count_dir(qdir, '.msg')
    if left:
        die(f"queue test: homing's spool already holds {left} messages; it must start empty")
    res = {'n': a.n, 'size': a.size, 'to': a.to}

    # 1. fill the queue
    log(f"== queue test: {a.n} x {size_label(a.size)} to {a.to} (nothing listens there: deferred)")
    with tempfile.TemporaryDirectory(prefix='bench-queue-') as tmp:
        ctr, err = os.path.join(tmp, 'counter'), os.path.join(tmp, 'stderr')
        cmd = ['smtp-source', '-c', '-s', str(a.sess), '-m', str(a.n), '-l', str(a.size),
               '-f', SENDER, '-t', a.to, a.addr]
        t0 = time.monotonic()
        with open(ctr, 'wb') as fo, open(err, 'wb') as fe:
            p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        next_progress = t0 + 10
        while p.poll() is None:
            now = time.monotonic()
            if now > next_progress:
                log(f"    {now - t0:5.0f} s: accepted {source_count(ctr)}/{a.n}, "
                    f"{count_dir(qdir, '.msg')} in homing's queue, homing RSS "
                    f"{(proc_status_kib(pid, 'VmRSS') or 0) / 1024:.0f} MiB")
                next_progress = now + 10
            if now - t0 > a.timeout:
                p.kill()
                die(f"queue test: timeout after {a.timeout:.0f} s: accepted {source_count(ctr)}/{a.n}")
            if not proc_alive(pid):
                p.kill()
                die(f"queue test: homing (pid {pid}) died after {source_count(ctr)} messages; see its log {a.log}")
            time.sleep(0.05)
        t_acc = time.monotonic() - t0
        if p.returncode != 0:
            with open(err, 'rb') as f:
                msg = f.read().decode(errors='replace').strip()[-600:]
            die(f"queue test: smtp-source exited {p.returncode} after {source_count(ctr)}/{a.n}: {msg}")
    res['accept_s'] = t_acc
    res['accept'] = a.n / t_acc
    log(f"    accepted {a.n} in {t_acc:.1f} s ({res['accept']:.0f} msg/s)")

    # 2. let the first delivery attempts finish (homing's CPU goes quiet)
    t1 = time.monotonic()
    quiet, last = 0, proc_cpu_s(pid)
    while quiet < 3 and time.monotonic() - t1 < a.settle:
        time.sleep(1)
        cur = proc_cpu_s(pid)
        quiet = quiet + 1 if cur is not None and last is not None and cur - last < 0.02 else 0
        last = cur
    res['settle_s'] = time.monotonic() - t1
    log(f"    homing idle after {res['settle_s']:.0f} s more" if quiet >= 3 else
        f"    homing still busy after {a.settle:.0f} s; measuring anyway")
    queued = count_dir(qdir, '.msg')
    res['queued'] = queued
    res['rss_kib'] = proc_status_kib(pid, 'VmRSS')
    res['hwm_kib'] = proc_status_kib(pid, 'VmHWM')
    files, apparent, allocated = tree_size(spool)
    res['spool_files'], res['spool_bytes'], res['spool_alloc_bytes'] = files, apparent, allocated
    log(f"    {queued} messages in the queue; homing VmRSS {res['rss_kib'] / 1024:.1f} MiB, "
        f"VmHWM (peak) {res['hwm_kib'] / 1024:.1f} MiB")
    log(f"    spool {spool}: {files} files, {human_size(apparent)} ({human_size(allocated)} on disk)")
    if queued < a.n:
        log(f"    WARNING: {a.n - queued} of the {a.n} messages are no longer queued "
            f"(bounced or delivered?) -- see {a.log}")

    # 3. SIGKILL, restart, time until it answers SMTP and until it logs 'spool recovered'
    log(f"== restart: SIGKILL homing (pid {pid}) with {queued} messages queued, start it again")
    os.kill(pid, signal.SIGKILL)
    t = time.monotonic()
    while proc_alive(pid) or not port_free(a.addr):
        if time.monotonic() - t > 30:
            die(f"homing (pid {pid}) did not go away after SIGKILL")
        time.sleep(0.01)
    log_off = os.path.getsize(a.log) if os.path.exists(a.log) else 0
    env = dict(os.environ, NO_COLOR='1')
    with open(a.log, 'ab') as lf:
        t0 = time.monotonic()
        p = subprocess.Popen(a.homing_cmd, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL, env=env)
    with open(a.pid_file, 'w') as f:
        f.write(f"{p.pid}\n")
    t_listen = wait_port(a.addr, a.restart_timeout, p.pid)
    if t_listen is None:
        die(f"restarted homing (pid {p.pid}) did not answer on {a.addr} within {a.restart_timeout:.0f} s"
            + ("" if proc_alive(p.pid) else f"; it exited {p.poll()}") + f"; see {a.log}")
    rec_line, t_rec = None, None
    while time.monotonic() - t0 < a.restart_timeout:
        with open(a.log, 'rb') as f:
            f.seek(log_off)
            for raw in f.read().decode(errors='replace').splitlines():
                line = ANSI.sub('', raw)
                if 'spool recovered' in line:
                    rec_line = line
                    break
        if rec_line:
            t_rec = time.monotonic()
            break
        time.sleep(0.05)
    res['restart_listen_s'] = t_listen - t0
    log(f"    answering SMTP on {a.addr} {res['restart_listen_s']:.2f} s after start")
    if rec_line:
        m = re.search(r'elapsed_ms=(\d+)', rec_line)
        mr = re.search(r'recovered=(\d+)', rec_line)
        res['recovered_elapsed_ms'] = int(m.group(1)) if m else None
        res['recovered'] = int(mr.group(1)) if mr else None
        res['restart_log_seen_s'] = t_rec - t0
        log(f"    log: {rec_line.strip()}")
        if res['recovered'] is not None and res['recovered'] != queued:
            log(f"    WARNING: recovered {res['recovered']} messages, {queued} were queued")
    else:
        log(f"    WARNING: no 'spool recovered' line in {a.log}")
    time.sleep(2)
    res['rss_after_restart_kib'] = proc_status_kib(p.pid, 'VmRSS')
    res['hwm_after_restart_kib'] = proc_status_kib(p.pid, 'VmHWM')
    log(f"    after restart: VmRSS {res['rss_after_restart_kib'] / 1024:.1f} MiB, "
        f"VmHWM {res['hwm_after_restart_kib'] / 1024:.1f} MiB, "
        f"{count_dir(qdir, '.msg')} messages in the queue")
    save_results(a.results, 'queue', res)


# ---- report -----------------------------------------------------------------------

def verdict(ok):
    return 'PASS' if ok else 'FAIL'


def cmd_report(a):
    res = load_results(a.results)
    meta = res.get('meta', {})
    bp = res.get('bench_params', {})
    log("")
    log("=" * 78)
    log(f"SUMMARY  {meta.get('date', '')}  {meta.get('machine', '')}")
    log(f"  homing {meta.get('homing_version', '?')}, Postfix {meta.get('postfix_version', '?')}; "
        f"queue file system: {meta.get('fs', '?')}; load average at start: {meta.get('load', '?')}")
    bench = res.get('bench', {})
    ok_all = True
    if bench:
        log(f"  smtp-source -s {bp.get('sessions')} -m {bp.get('n')} (one message per connection) "
            f"-> MTA -> MX via DNS -> smtp-sink; median of {bp.get('runs')} run(s)")
        log("")
        log(f"  {'size':8s} {'':20s} {'accept msg/s':>13s} {'end-to-end msg/s':>17s} {'CPU ms/msg':>11s} "
            f"{'disk flushes/msg':>17s}")
        for size in sorted(bench, key=int):
            cases = bench[size]
            sl = size_label(int(size))
            for name in ('homing', 'postfix'):
                if name in cases:
                    fl = cases[name].get('flushes_per_msg')
                    fl = f"{fl:17.2f}" if fl is not None else f"{'-':>17s}"
                    cpu = cases[name].get('cpu_ms_per_msg')
                    cpu = f"{cpu:11.2f}" if cpu is not None else f"{'-':>11s}"
                    log(f"  {sl:8s} {name:20s} {cases[name]['accept']:13.0f} {cases[name]['e2e']:17.0f} {cpu} {fl}")
            if 'homing' in cases and 'postfix' in cases:
                ra = cases['homing']['accept'] / cases['postfix']['accept']
                re_ = cases['homing']['e2e'] / cases['postfix']['e2e']
                ok = re_ >= 2.0
                ok_all &= ok
                log(f"  {sl:8s} {'ratio homing/Postfix':20s} {ra:12.2f}x {re_:16.2f}x"
                    f"   target end-to-end >= 2x: {verdict(ok)}")
            if 'ceiling' in cases:
                log(f"  {sl:8s} {'ceiling (no MTA)':20s} {'':13s} {cases['ceiling']['e2e']:17.0f}")
    fs = res.get('fsync')
    if fs:
        log(f"  disk: {fs['overwrite_fdatasync']:.0f} write+fdatasync/s (same file); "
            f"{fs['new_file_fsync_rename_fsync_dir']:.0f} new-file+fsync+rename+fsync(dir)/s")
    q = res.get('queue')
    if q:
        rss = q['rss_kib'] / 1024
        hwm = q['hwm_kib'] / 1024
        rss2 = (q.get('rss_after_restart_kib') or 0) / 1024
        hwm2 = (q.get('hwm_after_restart_kib') or 0) / 1024
        ok_rss = max(hwm, hwm2) < 256
        log("")
        log(f"  queue test: {q['n']} x {size_label(q['size'])} to {q['to']} (dead MX), "
            f"accepted at {q['accept']:.0f} msg/s; {q['queued']} queued")
        log(f"    homing RSS with them queued:  VmRSS {rss:.1f} MiB, peak VmHWM {hwm:.1f} MiB (since its start)")
        log(f"    the same after the restart:   VmRSS {rss2:.1f} MiB, peak VmHWM {hwm2:.1f} MiB (recovery included)")
        log(f"    target RSS < 256 MiB (both peaks): {verdict(ok_rss)}")
        log(f"    spool: {q['spool_files']} files, {human_size(q['spool_bytes'])} "
            f"({human_size(q['spool_alloc_bytes'])} on disk)")
        ok_restart = q.get('restart_listen_s', 1e9) < 10
        log(f"    restart after SIGKILL: answering SMTP after {q['restart_listen_s']:.2f} s; "
            f"'spool recovered' elapsed_ms={q.get('recovered_elapsed_ms')} "
            f"(recovered={q.get('recovered')})   target < 10 s: {verdict(ok_restart)}")
        ok_all &= ok_rss and ok_restart
    log("=" * 78)
    save_results(a.results, 'all_targets_met', ok_all)


def main():
    # run the `finally` clauses (which stop smtp-source) on SIGTERM too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--results', default='results.json')
    sp = ap.add_subparsers(dest='cmd', required=True)
    d = sp.add_parser('dnscheck')
    d.add_argument('server')
    d.add_argument('name')
    d.add_argument('type', choices=sorted(QTYPES))
    d.add_argument('--expect')
    f = sp.add_parser('fsync')
    f.add_argument('--dir', required=True)
    f.add_argument('--n', type=int, default=2000)
    b = sp.add_parser('bench')
    b.add_argument('--count-file', required=True, help='smtp-sink -c output')
    b.add_argument('--n', type=int, default=20000)
    b.add_argument('--runs', type=int, default=1)
    b.add_argument('--sess', type=int, default=20)
    b.add_argument('--sizes', type=int, nargs='+', default=[1024, 51200])
    b.add_argument('--to', default='user@example.test')
    b.add_argument('--ceiling', help='smtp-sink address for the no-MTA ceiling run')
    b.add_argument('--target', action='append', nargs=4, metavar=('NAME', 'ADDR', 'KIND:QDIR', 'PIDFILE'))
    b.add_argument('--timeout', type=float, default=900)
    b.add_argument('--disk-dir', help='count the flushes of the disk holding this directory')
    b.add_argument('--stall', type=float, default=60, help='fail when nothing is delivered for this long')
    q = sp.add_parser('queue')
    q.add_argument('--addr', required=True)
    q.add_argument('--n', type=int, default=100000)
    q.add_argument('--size', type=int, default=1024)
    q.add_argument('--sess', type=int, default=20)
    q.add_argument('--to', default='user@dead.test')
    q.add_argument('--spool', required=True)
    q.add_argument('--pid-file', required=True)
    q.add_argument('--log', required=True)
    q.add_argument('--timeout', type=float, default=900)
    q.add_argument('--settle', type=float, default=120)
    q.add_argument('--restart-timeout', type=float, default=60)
    q.add_argument('homing_cmd', nargs='+', metavar='CMD', help='homing command line, after --')
    r = sp.add_parser('report')
    r.add_argument('--meta', action='append', default=[], metavar='KEY=VALUE')
    a = ap.parse_args()
    if a.cmd == 'report' and a.meta:
        meta = load_results(a.results).get('meta', {})
        meta.update(kv.split('=', 1) for kv in a.meta)
        save_results(a.results, 'meta', meta)
    {'dnscheck': cmd_dnscheck, 'fsync': cmd_fsync, 'bench': cmd_bench,
     'queue': cmd_queue, 'report': cmd_report}[a.cmd](a)


if __name__ == '__main__':
    main()
