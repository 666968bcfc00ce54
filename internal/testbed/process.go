package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a long-running command the bed started inside a namespace
// (a daemon, an iperf3 server, a tcpdump). Its stdout and stderr go to a log
// file; the bed kills it on Close.
type Process struct {
	// Name says what the process is, for logs.
	Name string

	args    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // the exit status; valid once done is closed
}

// Start runs args inside ns in the background, in its own process group.
func (b *Bed) Start(ns *Netns, name string, args ...string) (*Process, error) {
	if !b.enter() {
		return nil, errClosed
	}
	defer b.inflight.Done()
	p := &Process{Name: name, args: args, logPath: b.file(name + ".log"), done: make(chan struct{})}
	log, err := os.Create(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer log.Close()
	p.cmd = ns.Command(context.Background(), args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	return p, nil
}

// Exited reports whether the process has exited, and its exit error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Log returns what the process wrote to stdout and stderr so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)\n", err)
	}
	return string(b)
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	if exited, _ := p.Exited(); exited {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to exit and returns its exit
// error.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("testbed: %s still running after %v", p.Name, timeout)
	}
}

// Stop sends SIGTERM, waits up to timeout, then kills the whole process
// group. It returns the exit error of the SIGTERM path, or an error saying
// that it had to kill.
func (p *Process) Stop(timeout time.Duration) error {
	if exited, err := p.Exited(); exited {
		return err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("testbed: %s ignored SIGTERM for %v and was killed", p.Name, timeout)
}

// waitForLog polls the log until it contains want, the process exits or the
// timeout passes.
func (p *Process) waitForLog(want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Log(), want) {
			return nil
		}
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("testbed: %s exited (%v) before printing %q; log:\n%s", p.Name, err, want, p.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: %s did not print %q within %v; log:\n%s", p.Name, want, timeout, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
