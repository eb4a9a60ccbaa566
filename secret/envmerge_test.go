package secret

import (
	"slices"
	"testing"
)

// A later source wins a variable, as kubelet's envFrom list does; each
// override names the variable and both sources.
func TestMergeEnv(t *testing.T) {
	v := func(kv ...string) []EnvVar {
		var out []EnvVar
		for i := 0; i < len(kv); i += 2 {
			out = append(out, EnvVar{Name: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	vars, over := MergeEnv([]EnvSource{
		{Ref: "ns/a", Vars: v("A", "1", "B", "2")},
		{Ref: "ns/b", Vars: v("B", "3", "C", "4")},
		{Ref: "ns/c", Vars: v("A", "5")},
	})
	if want := v("A", "5", "B", "3", "C", "4"); !EqualEnv(vars, want) {
		t.Errorf("merged %v, want %v", vars, want)
	}
	want := []Override{{"B", "ns/a", "ns/b"}, {"A", "ns/a", "ns/c"}}
	if !slices.Equal(over, want) {
		t.Errorf("overrides %v, want %v", over, want)
	}
	if s := over[0].String(); s != "Variable B from the EnvFrom secret ns/a is overridden by the EnvFrom secret ns/b." {
		t.Errorf("message %q", s)
	}
	if EqualEnv(v("A", "1"), v("A", "2")) || EqualEnv(v("A", "1"), v("B", "1")) || !EqualEnv(nil, v()) {
		t.Error("EqualEnv compares names and values")
	}
}
