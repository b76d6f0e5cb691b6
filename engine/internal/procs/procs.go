// Package procs names the live processes that hold a lock on a file, from
// /proc, so that "database is locked" can say who holds it.
//
// The engine's locks are open-file-description (OFD) locks, for which the
// kernel reports no pid (F_OFD_GETLK and /proc/locks say -1), and a pid
// recorded in the coordination file may belong to a process that has
// exited since. /proc/PID/fdinfo/FD lists the locks held through that
// descriptor, so walking the descriptors that refer to the file finds every
// live holder, in every process this user may inspect.
package procs

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/sombradb/sombra/engine/internal/common"
)

// Alive reports whether process pid exists (a zombie counts as gone).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return err != nil && errors.Is(err, os.ErrPermission)
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// Name is the command name of process pid ("" when unknown).
func Name(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Holder returns pid with its name, or nil when the process is gone.
func Holder(pid int) []common.Holder {
	if !Alive(pid) {
		return nil
	}
	return []common.Holder{{PID: pid, Name: Name(pid)}}
}

// File is an open file (an *os.File or a vfs.File).
type File interface {
	Stat() (os.FileInfo, error)
	Fd() uintptr
}

// LockHolders lists the processes holding a lock that covers byte b of
// the file f refers to and conflicts with a lock of the kind asked for (any
// lock for an exclusive one, exclusive locks for a shared one), through any
// descriptor but f's own (whose locks are the caller's). Each process appears once, in pid order. Processes
// whose descriptors this user may not read are not seen.
func LockHolders(f File, b int64, excl bool) []common.Holder {
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	want, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	self, selfFD := os.Getpid(), strconv.Itoa(int(f.Fd()))
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []common.Holder
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if pid == self && fd.Name() == selfFD {
				continue
			}
			var fst syscall.Stat_t
			if syscall.Stat(filepath.Join(fdDir, fd.Name()), &fst) != nil || fst.Dev != want.Dev || fst.Ino != want.Ino {
				continue
			}
			if holdsByte(filepath.Join("/proc", p.Name(), "fdinfo", fd.Name()), b, excl) {
				out = append(out, common.Holder{PID: pid, Name: Name(pid)})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b common.Holder) int { return a.PID - b.PID })
	return out
}

// holdsByte reports whether the fdinfo file lists a granted lock covering
// byte b (only write locks unless excl). Lines look like
//
//	lock:	1: OFDLCK  ADVISORY  READ -1 fe:00:9978349 4099 4099
//
// ("EOF" for an open end); waiters are listed after "->" and hold nothing.
func holdsByte(fdinfo string, b int64, excl bool) bool {
	f, err := os.Open(fdinfo)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "lock:")
		if !ok || strings.Contains(line, "->") || (!excl && !strings.Contains(line, " WRITE ")) {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		start, err := strconv.ParseInt(fields[len(fields)-2], 10, 64)
		if err != nil {
			continue
		}
		end := int64(1<<63 - 1)
		if e := fields[len(fields)-1]; e != "EOF" {
			if end, err = strconv.ParseInt(e, 10, 64); err != nil {
				continue
			}
		}
		if start <= b && b <= end {
			return true
		}
	}
	return false
}
