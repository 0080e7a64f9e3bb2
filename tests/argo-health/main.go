// argo-health runs Argo CD resource health checks (Lua) the way Argo CD runs those it reads from
// argocd-cm (util/lua in argoproj/argo-cd): gopher-lua (Lua 5.1), only the package, base and table
// libraries open (no string library), the object as the global `obj`, a 1 s limit, and a table
// returned whose status must be one Argo CD knows.
//
//	argo-health test DIR      runs every DIR/<group>/<Kind>/health_test.yaml (Argo CD's layout:
//	                          tests: [{healthStatus: {status, message}, inputPath}])
//	argo-health eval SCRIPT   reads a JSON list of objects on stdin and prints a JSON list of
//	                          {status, message}, as SCRIPT judges them
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type healthTest struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

var known = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// decode turns a decoded JSON value into a Lua value as Argo CD's decodeValue does.
func decode(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(decode(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), decode(l, item))
		}
		return t
	}
	return lua.LNil
}

func health(script string, obj map[string]interface{}) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	hs := healthStatus{Status: lua.LVAsString(ret.RawGetString("status"))}
	if m, ok := ret.RawGetString("message").(lua.LString); ok {
		hs.Message = string(m)
	}
	if !known[hs.Status] {
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

func readObject(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]interface{}
	return obj, yaml.Unmarshal(data, &obj)
}

func runTests(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "health_test.yaml"))
	if len(files) == 0 {
		fmt.Fprintf(os.Stderr, "no */*/health_test.yaml under %s\n", dir)
		return 2
	}
	failed, ran := 0, 0
	for _, file := range files {
		kindDir := filepath.Dir(file)
		script, err := os.ReadFile(filepath.Join(kindDir, "health.lua"))
		if err != nil {
			fmt.Println(err)
			return 2
		}
		data, _ := os.ReadFile(file)
		var tests healthTest
		if err := yaml.Unmarshal(data, &tests); err != nil {
			fmt.Printf("%s: %v\n", file, err)
			return 2
		}
		for _, t := range tests.Tests {
			ran++
			name := filepath.Join(filepath.Base(filepath.Dir(kindDir)), filepath.Base(kindDir), t.InputPath)
			obj, err := readObject(filepath.Join(kindDir, t.InputPath))
			if err != nil {
				fmt.Printf("FAIL %s: %v\n", name, err)
				failed++
				continue
			}
			got, err := health(string(script), obj)
			if err != nil || got != t.HealthStatus {
				fmt.Printf("FAIL %s: got %+v (%v), want %+v\n", name, got, err, t.HealthStatus)
				failed++
				continue
			}
			fmt.Printf("ok   %s: %s\n", name, got.Status)
		}
	}
	fmt.Printf("%d health tests, %d failed\n", ran, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

func eval(scriptPath string) int {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var objects []map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := []healthStatus{}
	for _, obj := range objects {
		hs, err := health(string(script), obj)
		if err != nil {
			hs = healthStatus{Status: "Error", Message: err.Error()}
		}
		out = append(out, hs)
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argo-health test DIR | argo-health eval SCRIPT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "test":
		os.Exit(runTests(os.Args[2]))
	case "eval":
		os.Exit(eval(os.Args[2]))
	}
	fmt.Fprintln(os.Stderr, "usage: argo-health test DIR | argo-health eval SCRIPT")
	os.Exit(2)
}
