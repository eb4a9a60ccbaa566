package secret

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
)

// Override is a variable that a later envFrom source set again: its name
// and the two sources ("namespace/name"), never a value.
type Override struct{ Name, From, By string }

func (o Override) String() string {
	return fmt.Sprintf("Variable %s from the EnvFrom secret %s is overridden by the EnvFrom secret %s.", o.Name, o.From, o.By)
}

// EnvSource is the variables of one envFrom source, with its name.
type EnvSource struct {
	Ref  string
	Vars []EnvVar
}

// MergeEnv applies envFrom sources in order, as kubelet does for a
// container's envFrom list: a later source wins a variable. It returns
// the variables sorted by name and each override, in order.
func MergeEnv(srcs []EnvSource) (vars []EnvVar, overrides []Override) {
	byName := map[string]EnvVar{}
	from := map[string]string{}
	for _, s := range srcs {
		for _, v := range s.Vars {
			if f, ok := from[v.Name]; ok {
				overrides = append(overrides, Override{Name: v.Name, From: f, By: s.Ref})
			}
			byName[v.Name], from[v.Name] = v, s.Ref
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		vars = append(vars, byName[n])
	}
	return vars, overrides
}

// EqualEnv says whether a and b are the same variables with the same
// values, in the same order.
func EqualEnv(a, b []EnvVar) bool {
	return slices.EqualFunc(a, b, func(x, y EnvVar) bool {
		return x.Name == y.Name && bytes.Equal(x.Value, y.Value)
	})
}
