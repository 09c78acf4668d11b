package bench

import (
	"fmt"
	"slices"
	"time"
)

// Sample is a set of measured durations.
type Sample []time.Duration

// Median returns the median, 0 for an empty sample.
func (s Sample) Median() time.Duration { return s.Percentile(50) }

// Percentile returns the p-th percentile (nearest rank), 0 for an empty
// sample.
func (s Sample) Percentile(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(p/100*float64(len(c))+0.5) - 1
	return c[max(0, min(i, len(c)-1))]
}

// Min returns the smallest duration.
func (s Sample) Min() time.Duration {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

// MedianFloat returns the median of xs, 0 when empty.
func MedianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	c := slices.Clone(xs)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// Ms formats d in milliseconds with a precision that suits its size.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms == 0:
		return "0"
	case ms < 1:
		return fmt.Sprintf("%.3f", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f", ms)
	}
	return fmt.Sprintf("%.0f", ms)
}
