package main

import (
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the stderr logger: logr over zap, -v N enabling V(N).
func newLogger(format string, verbosity int, w io.Writer) (logr.Logger, error) {
	if verbosity < 0 || verbosity > 9 {
		return logr.Discard(), fmt.Errorf("-v must be between 0 and 9, got %d", verbosity)
	}
	switch format {
	case "auto":
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	case "console", "json":
	default:
		return logr.Discard(), fmt.Errorf("unknown --log-format %q: use auto|console|json", format)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		encCfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	// logr's V(n) is zap level -n: -v 9 enables everything down to V(9).
	level := zap.NewAtomicLevelAt(zapcore.Level(-verbosity))
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	return zapr.NewLogger(zap.New(core)), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
