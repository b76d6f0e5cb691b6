package debug

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// ErrNotProfiling is returned by StopProfiling when no profile runs.
var ErrNotProfiling = errors.New("profiling is not running")

type profiling struct {
	cpu   *os.File
	start time.Time
}

func (p *profiling) abort() {
	pprof.StopCPUProfile()
	p.cpu.Close()
	os.Remove(p.cpu.Name())
}

func (d *DebugMode) takeProfiling() *profiling {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.prof
	d.prof = nil
	return p
}

// StartProfiling starts a CPU profile of the whole process into a
// temporary file. CPU profiling is process-wide in Go: it fails if a
// profile already runs (this DebugMode's, another's, or go test
// -cpuprofile).
func (d *DebugMode) StartProfiling() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.disabled {
		return errDisabled
	}
	if d.prof != nil {
		return errors.New("profiling is already running")
	}
	f, err := os.CreateTemp("", "sombra-cpu-*.pprof")
	if err != nil {
		return fmt.Errorf("start profiling: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("start profiling: %w", err)
	}
	d.prof = &profiling{cpu: f, start: time.Now()}
	return nil
}

// FunctionStat is one function's share of a profile. For the CPU profile
// Flat and Cum are nanoseconds of CPU time; for the heap profile, bytes in
// use.
type FunctionStat struct {
	Name string `json:"name"`
	// Flat is what was spent in the function itself, Cum in it and what it
	// called.
	Flat int64 `json:"flat"`
	Cum  int64 `json:"cum"`
	// FlatFraction is Flat over the profile's total.
	FlatFraction float64 `json:"flat_fraction"`
}

// Profile is what StopProfiling gathered.
type Profile struct {
	CPUProfilePath  string        `json:"cpu_profile_path"`
	HeapProfilePath string        `json:"heap_profile_path"`
	Duration        time.Duration `json:"duration"` // wall time profiled
	// Samples counts CPU samples (the profile stores one record per
	// distinct stack, with a count).
	Samples int           `json:"samples"`
	CPUTime time.Duration `json:"cpu_time"` // CPU time sampled
	// Functions are the functions seen in the CPU profile, by flat time
	// (then cumulative time), at most 50.
	Functions      []FunctionStat `json:"functions"`
	HeapInUseBytes int64          `json:"heap_in_use_bytes"`
	// HeapFunctions are the allocation sites holding the most memory in
	// use, at most 20.
	HeapFunctions []FunctionStat `json:"heap_functions"`
}

const (
	maxFunctions     = 50
	maxHeapFunctions = 20
	summaryTop       = 10
)

// StopProfiling stops the CPU profile, writes a heap profile (after a
// garbage collection, so in-use figures are current) and parses both. The
// files stay in the temporary directory (Profile.Remove deletes them); open
// them with `go tool pprof`.
func (d *DebugMode) StopProfiling() (*Profile, error) {
	p := d.takeProfiling()
	if p == nil {
		return nil, ErrNotProfiling
	}
	pprof.StopCPUProfile()
	out := &Profile{CPUProfilePath: p.cpu.Name(), Duration: time.Since(p.start)}
	if err := p.cpu.Close(); err != nil {
		return out, fmt.Errorf("stop profiling: %w", err)
	}
	cpu, err := parseFile(out.CPUProfilePath)
	if err != nil {
		return out, fmt.Errorf("stop profiling: CPU profile: %w", err)
	}
	out.Samples = int(total(cpu, "samples"))
	var total int64
	out.Functions, total = byFunction(cpu, "cpu", maxFunctions)
	out.CPUTime = time.Duration(total)

	hf, err := os.CreateTemp("", "sombra-heap-*.pprof")
	if err != nil {
		return out, fmt.Errorf("stop profiling: %w", err)
	}
	out.HeapProfilePath = hf.Name()
	runtime.GC()
	err = pprof.Lookup("heap").WriteTo(hf, 0)
	if cerr := hf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return out, fmt.Errorf("stop profiling: heap profile: %w", err)
	}
	heap, err := parseFile(out.HeapProfilePath)
	if err != nil {
		return out, fmt.Errorf("stop profiling: heap profile: %w", err)
	}
	out.HeapFunctions, out.HeapInUseBytes = byFunction(heap, "inuse_space", maxHeapFunctions)
	return out, nil
}

// total sums the values of sample type typ.
func total(p *profile.Profile, typ string) int64 {
	var sum int64
	for i, st := range p.SampleType {
		if st.Type == typ {
			for _, s := range p.Sample {
				sum += s.Value[i]
			}
		}
	}
	return sum
}

func parseFile(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return profile.Parse(f)
}

// byFunction sums the sample values of type typ per function: flat to the
// innermost function of each sample's leaf (inlined frames count as their
// own functions, as pprof does), cumulative once to every function on its
// stack. It returns the top n by flat value and the total.
func byFunction(p *profile.Profile, typ string, n int) ([]FunctionStat, int64) {
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == typ {
			vi = i
		}
	}
	if vi < 0 {
		return nil, 0
	}
	stats := map[string]*FunctionStat{}
	get := func(name string) *FunctionStat {
		s := stats[name]
		if s == nil {
			s = &FunctionStat{Name: name}
			stats[name] = s
		}
		return s
	}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		if v == 0 {
			continue
		}
		total += v
		seen := map[string]bool{}
		for i, loc := range s.Location {
			names := locationNames(loc)
			if i == 0 {
				get(names[0]).Flat += v
			}
			for _, name := range names {
				if !seen[name] {
					seen[name] = true
					get(name).Cum += v
				}
			}
		}
	}
	out := make([]FunctionStat, 0, len(stats))
	for _, s := range stats {
		if total > 0 {
			s.FlatFraction = float64(s.Flat) / float64(total)
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Flat != b.Flat {
			return a.Flat > b.Flat
		}
		if a.Cum != b.Cum {
			return a.Cum > b.Cum
		}
		return a.Name < b.Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, total
}

// locationNames returns the functions of a location, innermost first (an
// unsymbolised location is named by its address).
func locationNames(loc *profile.Location) []string {
	var out []string
	for _, l := range loc.Line {
		if l.Function != nil && l.Function.Name != "" {
			out = append(out, l.Function.Name)
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("0x%x", loc.Address))
	}
	return out
}

// Summary renders the profile for people: CPU time and samples, the top
// functions by flat CPU time, and the heap in use with its top allocation
// sites.
func (p *Profile) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CPU profile %s: %s wall, %s CPU in %d samples\n", p.CPUProfilePath,
		p.Duration.Round(time.Millisecond), p.CPUTime.Round(time.Millisecond), p.Samples)
	if p.Samples == 0 {
		b.WriteString("  no CPU samples (the process used less than 10ms of CPU while profiling)\n")
	} else {
		fmt.Fprintf(&b, "Top %d functions by flat CPU time:\n%10s %6s %10s  %s\n", min(summaryTop, len(p.Functions)), "flat", "flat%", "cum", "function")
		for _, f := range p.Functions[:min(summaryTop, len(p.Functions))] {
			fmt.Fprintf(&b, "%10s %5.1f%% %10s  %s\n", time.Duration(f.Flat).Round(time.Millisecond),
				100*f.FlatFraction, time.Duration(f.Cum).Round(time.Millisecond), f.Name)
		}
	}
	if p.HeapProfilePath != "" {
		fmt.Fprintf(&b, "Heap profile %s: %s in use\n", p.HeapProfilePath, bytesString(p.HeapInUseBytes))
		for _, f := range p.HeapFunctions[:min(5, len(p.HeapFunctions))] {
			fmt.Fprintf(&b, "%10s %5.1f%%  %s\n", bytesString(f.Flat), 100*f.FlatFraction, f.Name)
		}
	}
	return b.String()
}

func (p *Profile) String() string { return p.Summary() }

// Remove deletes the profile files.
func (p *Profile) Remove() error {
	var errs []error
	for _, f := range []string{p.CPUProfilePath, p.HeapProfilePath} {
		if f != "" {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
