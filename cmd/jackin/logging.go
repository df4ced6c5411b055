package main

import (
	"fmt"
	"io"
	"os"
	"strings"

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
	encCfg.EncodeLevel = lowercaseLevel
	if format == "console" {
		encCfg.EncodeLevel = capitalColorLevel
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

// verboseLevelName names the levels below debug: logr's V(n) is zap level
// -n, which zap itself prints as "Level(-n)". V(1) is zap's debug; V(2)
// to V(9) are "debug2" to "debug9", the number being the -v that shows them.
func verboseLevelName(l zapcore.Level) (string, bool) {
	if l >= zapcore.DebugLevel {
		return "", false
	}
	return fmt.Sprintf("debug%d", -int(l)), true
}

// lowercaseLevel is zap's lowercase level encoder ("info", "debug") with
// verboseLevelName's names below debug.
func lowercaseLevel(l zapcore.Level, enc zapcore.PrimitiveArrayEncoder) {
	if name, ok := verboseLevelName(l); ok {
		enc.AppendString(name)
		return
	}
	zapcore.LowercaseLevelEncoder(l, enc)
}

// capitalColorLevel is zap's capital, coloured level encoder ("INFO",
// "DEBUG") with verboseLevelName's names below debug, coloured as debug.
func capitalColorLevel(l zapcore.Level, enc zapcore.PrimitiveArrayEncoder) {
	if name, ok := verboseLevelName(l); ok {
		enc.AppendString("\x1b[35m" + strings.ToUpper(name) + "\x1b[0m") // magenta, zap's colour for debug
		return
	}
	zapcore.CapitalColorLevelEncoder(l, enc)
}
