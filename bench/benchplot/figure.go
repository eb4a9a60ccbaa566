package benchplot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind is how a figure draws its series.
type Kind string

const (
	// KindCDF: each series is samples (seconds), drawn as an empirical
	// cumulative distribution on a logarithmic time axis.
	KindCDF Kind = "cdf"
	// KindLines: each series is points (X, Y), drawn as a line with marks.
	KindLines Kind = "lines"
	// KindBars: each series is one value per group (Labels), drawn as bars
	// side by side per group.
	KindBars Kind = "bars"
)

// Figure is what DIR/NAME.json holds.
type Figure struct {
	Kind   Kind     `json:"kind"`
	Title  string   `json:"title"`
	XLabel string   `json:"xLabel"`
	YLabel string   `json:"yLabel"`
	Labels []string `json:"labels,omitempty"` // KindBars: the groups
	// Series by name, drawn in the order of Order.
	Series map[string]Series `json:"series"`
	Order  []string          `json:"order"`
}

// Series is one curve or set of bars, with where it came from.
type Series struct {
	// Source says which run made it (benchmark or test name, command).
	Source  string    `json:"source"`
	Samples []float64 `json:"samples,omitempty"` // KindCDF
	X       []float64 `json:"x,omitempty"`       // KindLines
	Y       []float64 `json:"y"`                 // KindLines, KindBars
}

var figureName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Record stores s as series name of figure f (which gives the kind,
// title and axes; a stored figure of another kind is replaced) in
// dir/NAME.json, then draws dir/NAME.png with every series stored.
func Record(dir, name string, f Figure, series string, s Series) error {
	if !figureName.MatchString(name) {
		return fmt.Errorf("figure name %q: want lower-case letters, digits and dashes", name)
	}
	if err := check(f.Kind, s, len(f.Labels)); err != nil {
		return fmt.Errorf("figure %s, series %q: %w", name, series, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("figure %s: %w", name, err)
	}
	stored, err := load(filepath.Join(dir, name+".json"))
	if err != nil {
		return fmt.Errorf("figure %s: %w", name, err)
	}
	if stored != nil && stored.Kind == f.Kind {
		f.Series, f.Order = stored.Series, stored.Order
	}
	if f.Series == nil {
		f.Series = map[string]Series{}
	}
	if _, ok := f.Series[series]; !ok {
		f.Order = append(f.Order, series)
	}
	f.Series[series] = s
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("figure %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("figure %s: %w", name, err)
	}
	if err := draw(&f, filepath.Join(dir, name+".png")); err != nil {
		return fmt.Errorf("figure %s: draw: %w", name, err)
	}
	return nil
}

func check(k Kind, s Series, groups int) error {
	switch k {
	case KindCDF:
		if len(s.Samples) == 0 {
			return errors.New("no samples")
		}
		for _, v := range s.Samples {
			if v <= 0 {
				return fmt.Errorf("sample %v: a latency must be positive (the axis is logarithmic)", v)
			}
		}
	case KindLines:
		if len(s.X) == 0 || len(s.X) != len(s.Y) {
			return fmt.Errorf("%d x for %d y", len(s.X), len(s.Y))
		}
	case KindBars:
		if groups == 0 || len(s.Y) != groups {
			return fmt.Errorf("%d values for %d groups", len(s.Y), groups)
		}
	default:
		return fmt.Errorf("unknown kind %q", k)
	}
	return nil
}

// Redraw draws every figure stored in dir (NAME.json) again as NAME.png:
// after a change of how figures are drawn, or of results copied elsewhere
// (make bench-docs).
func Redraw(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no figure (*.json) in %s", dir)
	}
	for _, f := range files {
		fig, err := load(f)
		if err != nil {
			return err
		}
		for _, name := range fig.Order {
			if err := check(fig.Kind, fig.Series[name], len(fig.Labels)); err != nil {
				return fmt.Errorf("%s, series %q: %w", filepath.Base(f), name, err)
			}
		}
		if err := draw(fig, strings.TrimSuffix(f, ".json")+".png"); err != nil {
			return fmt.Errorf("%s: draw: %w", filepath.Base(f), err)
		}
	}
	return nil
}

// load reads a stored figure; nil if there is none yet.
func load(path string) (*Figure, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f Figure
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return &f, nil
}
