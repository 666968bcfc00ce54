package testbed

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	// A real line with utime 1234 and stime 56 put in, and a command name
	// holding ") (" to show that fields count from the last parenthesis.
	got, err := ParseProcStatCPU("16656 (a) (b) R 16654 16654 8224 0 -1 4194304 101 0 0 0 1234 56 0 0 20 0 1 0 34824 3133440 401 18446744073709551615\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := 12*time.Second + 900*time.Millisecond; got != want {
		t.Errorf("ParseProcStatCPU = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "16656 cat R 1 2", "1 (x) R 1 2 3 4 5 6 7 8 9 10 11", "1 (x) R 1 2 3 4 5 6 7 8 9 10 x 12"} {
		if d, err := ParseProcStatCPU(bad); err == nil {
			t.Errorf("ParseProcStatCPU(%q) = %v, want an error", bad, d)
		}
	}
	// This process's own stat parses.
	if _, err := ProcessCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
}

func TestParseProcStatSoftirq(t *testing.T) {
	got, err := ParseProcStatSoftirq("cpu  42969 0 10529 15395 255 0 88 37 0 0\ncpu0 21418 0 4939 8247 17 0 16 15 0 0\ncpu1 21550 0 5589 7148 237 0 71 21 0 0\nintr 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := 880 * time.Millisecond; got != want {
		t.Errorf("ParseProcStatSoftirq = %v, want %v (88 ticks)", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7\n", "cpu 1 2 3 4 5 6\n"} {
		if d, err := ParseProcStatSoftirq(bad); err == nil {
			t.Errorf("ParseProcStatSoftirq(%q) = %v, want an error", bad, d)
		}
	}
	if _, err := SoftirqCPU(); err != nil {
		t.Error(err)
	}
}

func TestParseProcStatus(t *testing.T) {
	got, err := ParseProcStatus("Name:\tcat\nVmPeak:\t    5000 kB\nVmHWM:\t    2176 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Memory{RSS: 2048 << 10, PeakRSS: 2176 << 10}); got != want {
		t.Errorf("ParseProcStatus = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "VmRSS:\t2048 kB\n", "VmHWM:\t1 kB\nVmRSS:\tlots kB\n"} {
		if m, err := ParseProcStatus(bad); err == nil {
			t.Errorf("ParseProcStatus(%q) = %+v, want an error", bad, m)
		}
	}
	if m, err := ProcessMemory(os.Getpid()); err != nil || m.RSS == 0 || m.PeakRSS < m.RSS {
		t.Errorf("ProcessMemory(self) = %+v, %v; want RSS > 0 and VmHWM ≥ VmRSS", m, err)
	}
}
