package gengraph

import "github.com/sombradb/sombra/engine"

// EngineValue converts a generated value to a Sombra property value.
func EngineValue(v Value) engine.PropertyValue {
	switch v.Kind {
	case KindBool:
		return engine.BoolValue(v.B)
	case KindInt:
		return engine.IntValue(v.I)
	case KindFloat:
		return engine.FloatValue(v.F)
	case KindString:
		return engine.StringValue(v.S)
	case KindBytes:
		return engine.BytesValue(v.Bytes)
	}
	return engine.NullValue()
}

// EngineProps converts generated properties (nil stays nil).
func EngineProps(in map[string]Value) engine.Properties {
	if in == nil {
		return nil
	}
	out := make(engine.Properties, len(in))
	for k, v := range in {
		out[k] = EngineValue(v)
	}
	return out
}
