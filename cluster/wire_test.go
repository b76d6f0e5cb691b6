package cluster

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// Every property kind survives the JSON round trip with its kind: an
// integral float stays a float, a large int stays exact.
func TestPropsRoundTrip(t *testing.T) {
	in := Props{"i": engine.IntValue(math.MaxInt64), "neg": engine.IntValue(-3), "f": engine.FloatValue(3), "g": engine.FloatValue(1e-300),
		"nan": engine.FloatValue(math.NaN()), "ninf": engine.FloatValue(math.Inf(-1)), "s": engine.StringValue(`"quoted" ✓`),
		"b": engine.BytesValue([]byte{0, 255}), "t": engine.BoolValue(true), "n": engine.NullValue()}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Props
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		got := out[k]
		if got.Kind() != v.Kind() {
			t.Errorf("%s: kind %v, want %v (%s)", k, got.Kind(), v.Kind(), raw)
			continue
		}
		if f, ok := v.Float(); ok && math.IsNaN(f) {
			if g, _ := got.Float(); !math.IsNaN(g) {
				t.Errorf("%s: %v", k, got)
			}
			continue
		}
		if !got.Equal(v) {
			t.Errorf("%s: %v, want %v", k, got, v)
		}
	}
	for _, bad := range []string{`{"x":{"y":1}}`, `{"x":[1]}`, `{"x":{"bytes":"***"}}`, `{"x":1e999}`} {
		var p Props
		if err := json.Unmarshal([]byte(bad), &p); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad, err)
		}
	}
}
