package testbed

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat and /proc/stat:
// USER_HZ, which Linux fixes at 100 on every architecture for these files
// (sysconf(_SC_CLK_TCK)).
const clockTick = time.Second / 100

// ProcessCPU returns the CPU time process pid has used so far, all its
// threads together: utime + stime of /proc/<pid>/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("testbed: %w", err)
	}
	return ParseProcStatCPU(string(b))
}

// ParseProcStatCPU returns utime + stime from the text of /proc/<pid>/stat.
// The command name (field 2, in parentheses) may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func ParseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("testbed: no command name in /proc/<pid>/stat: %.100q", stat)
	}
	// After the name: state (field 3), ... utime (14), stime (15).
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("testbed: /proc/<pid>/stat has %d fields after the name, want at least 13", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("testbed: /proc/<pid>/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// SoftirqCPU returns the time all CPUs together have spent serving
// softirqs since boot (the softirq column of /proc/stat's "cpu" line),
// machine-wide: the kernel's packet forwarding runs there.
func SoftirqCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("testbed: %w", err)
	}
	return ParseProcStatSoftirq(string(b))
}

// ParseProcStatSoftirq returns the softirq time of the "cpu" line (the sum
// over CPUs) of /proc/stat's text: user nice system idle iowait irq softirq.
func ParseProcStatSoftirq(stat string) (time.Duration, error) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 8 {
			return 0, fmt.Errorf("testbed: /proc/stat cpu line has %d fields, want at least 8", len(f))
		}
		n, err := strconv.ParseUint(f[7], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("testbed: /proc/stat: %w", err)
		}
		return time.Duration(n) * clockTick, nil
	}
	return 0, fmt.Errorf("testbed: no cpu line in /proc/stat")
}

// Memory is a process's resident memory, from /proc/<pid>/status.
type Memory struct {
	RSS     uint64 // VmRSS, bytes: resident now
	PeakRSS uint64 // VmHWM, bytes: the most it has been resident
}

// ProcessMemory returns process pid's resident memory.
func ProcessMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("testbed: %w", err)
	}
	return ParseProcStatus(string(b))
}

// ParseProcStatus returns VmRSS and VmHWM from the text of
// /proc/<pid>/status; both must be there.
func ParseProcStatus(status string) (Memory, error) {
	var m Memory
	found := map[string]*uint64{"VmRSS": &m.RSS, "VmHWM": &m.PeakRSS}
	for _, line := range strings.Split(status, "\n") {
		key, rest, ok := strings.Cut(line, ":")
		dst := found[key]
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("testbed: /proc/<pid>/status %s: %w", key, err)
		}
		*dst = kb << 10
		delete(found, key)
	}
	for key := range found {
		return Memory{}, fmt.Errorf("testbed: no %s in /proc/<pid>/status", key)
	}
	return m, nil
}
