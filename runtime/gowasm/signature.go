package gowasm

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"reflect"
	"strconv"
	"strings"

	"vane"
)

// signature is what vane needs of a script's func main: its parameters (for
// the schema and the wrapper) and the shape of its results.
type signature struct {
	params []param
	// results: 0 none, 1 a value or an error (resultIsError), 2 (value, error).
	results       int
	resultIsError bool
}

// param is one parameter of main.
type param struct {
	name     string         // as in the source; the JSON arg name
	typeSrc  string         // the type as written, e.g. "struct{ Foo string `json:\"foo\"` }"
	prop     *vane.Property // its JSON Schema
	required bool
}

// parseSignature parses code as a Go file and reads func main's signature.
// Errors wrap vane.ErrInvalid and carry the position.
func parseSignature(code string) (*signature, error) {
	fset := token.NewFileSet()
	src := code
	if !hasPackageClause(code) {
		src = "package inner\n" + code
	}
	f, err := parser.ParseFile(fset, "main.go", src, parser.SkipObjectResolution)
	if err != nil {
		return nil, vane.Invalidf("cannot parse the Go script: %v", err)
	}
	var main *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "main" {
			main = fd
		}
	}
	if main == nil {
		return nil, vane.Invalidf("the Go script has no func main")
	}
	if main.Type.TypeParams != nil && len(main.Type.TypeParams.List) > 0 {
		return nil, vane.Invalidf("%s: func main cannot have type parameters", fset.Position(main.Pos()))
	}
	types := typeDecls(f)
	sig := &signature{}
	seen := map[string]bool{}
	for _, field := range main.Type.Params.List {
		if _, ok := field.Type.(*ast.Ellipsis); ok {
			return nil, vane.Invalidf("%s: func main cannot be variadic", fset.Position(field.Pos()))
		}
		if len(field.Names) == 0 {
			return nil, vane.Invalidf("%s: every parameter of func main needs a name (it is the argument's name)", fset.Position(field.Pos()))
		}
		typeSrc := nodeSource(fset, field.Type)
		for _, n := range field.Names {
			if n.Name == "_" {
				return nil, vane.Invalidf("%s: a parameter of func main cannot be named _", fset.Position(n.Pos()))
			}
			if seen[n.Name] {
				return nil, vane.Invalidf("%s: duplicate parameter %s", fset.Position(n.Pos()), n.Name)
			}
			seen[n.Name] = true
			_, isPtr := field.Type.(*ast.StarExpr)
			sig.params = append(sig.params, param{
				name: n.Name, typeSrc: typeSrc, required: !isPtr,
				prop: schemaOf(field.Type, types, map[string]bool{}),
			})
		}
	}
	if main.Type.Results != nil {
		for _, r := range main.Type.Results.List {
			sig.results += max(1, len(r.Names))
		}
		if sig.results > 2 {
			return nil, vane.Invalidf("%s: func main returns at most (value, error)", fset.Position(main.Type.Results.Pos()))
		}
		last := main.Type.Results.List[len(main.Type.Results.List)-1].Type
		lastIsError := isErrorType(last)
		if sig.results == 2 && !lastIsError {
			return nil, vane.Invalidf("%s: func main's second result must be an error", fset.Position(last.Pos()))
		}
		sig.resultIsError = sig.results == 1 && lastIsError
	}
	return sig, nil
}

// schema returns the JSON Schema of main's parameters.
func (s *signature) schema() *vane.Schema {
	out := vane.NewSchema()
	for _, p := range s.params {
		out.Add(p.name, p.prop, p.required)
	}
	return out
}

func isErrorType(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "error"
}

// hasPackageClause reports whether code starts (after comments) with a
// package clause; Windmill's Go scripts usually say "package inner".
func hasPackageClause(code string) bool {
	fset := token.NewFileSet()
	_, err := parser.ParseFile(fset, "", code, parser.PackageClauseOnly)
	return err == nil
}

func typeDecls(f *ast.File) map[string]ast.Expr {
	out := map[string]ast.Expr{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, s := range gd.Specs {
			if ts, ok := s.(*ast.TypeSpec); ok && ts.TypeParams == nil {
				out[ts.Name.Name] = ts.Type
			}
		}
	}
	return out
}

func nodeSource(fset *token.FileSet, n ast.Node) string {
	var b bytes.Buffer
	_ = printer.Fprint(&b, fset, n)
	return b.String()
}

// schemaOf maps a Go type expression to a JSON Schema property. Named types
// declared in the script are followed (visiting guards against recursion);
// types from other packages are "any", except time.Time (a date-time string)
// and json.RawMessage (any).
func schemaOf(e ast.Expr, types map[string]ast.Expr, visiting map[string]bool) *vane.Property {
	switch t := e.(type) {
	case *ast.ParenExpr:
		return schemaOf(t.X, types, visiting)
	case *ast.Ident:
		switch t.Name {
		case "string":
			return &vane.Property{Type: "string"}
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "uintptr", "byte", "rune":
			return &vane.Property{Type: "integer"}
		case "float32", "float64":
			return &vane.Property{Type: "number"}
		case "bool":
			return &vane.Property{Type: "boolean"}
		case "any":
			return &vane.Property{}
		}
		if decl, ok := types[t.Name]; ok && !visiting[t.Name] {
			visiting[t.Name] = true
			defer delete(visiting, t.Name)
			p := schemaOf(decl, types, visiting)
			p.OriginalType = t.Name
			return p
		}
		return &vane.Property{OriginalType: t.Name}
	case *ast.SelectorExpr:
		name := fmt.Sprintf("%s.%s", exprName(t.X), t.Sel.Name)
		if name == "time.Time" {
			return &vane.Property{Type: "string", Format: "date-time"}
		}
		return &vane.Property{OriginalType: name}
	case *ast.StarExpr:
		return schemaOf(t.X, types, visiting)
	case *ast.ArrayType:
		if id, ok := t.Elt.(*ast.Ident); ok && (id.Name == "byte" || id.Name == "uint8") && t.Len == nil {
			return &vane.Property{Type: "string", ContentEncoding: "base64"}
		}
		return &vane.Property{Type: "array", Items: schemaOf(t.Elt, types, visiting)}
	case *ast.MapType:
		return &vane.Property{Type: "object"}
	case *ast.InterfaceType:
		// An object, as in Windmill (windmill-parser-go, parse_go_typ:
		// Expression::TypeInterface is Typ::Object(vec![])).
		return &vane.Property{Type: "object"}
	case *ast.StructType:
		return structSchema(t, types, visiting)
	}
	return &vane.Property{}
}

func exprName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return "?"
}

// structSchema is an object with a property per exported field, named as
// encoding/json names it. Fields that are pointers or tagged omitempty are
// optional; embedded structs are flattened as encoding/json does.
func structSchema(st *ast.StructType, types map[string]ast.Expr, visiting map[string]bool) *vane.Property {
	p := &vane.Property{Type: "object", Properties: map[string]*vane.Property{}}
	for _, f := range st.Fields.List {
		name, omitempty, skip := jsonTag(f.Tag)
		if skip {
			continue
		}
		_, isPtr := f.Type.(*ast.StarExpr)
		if len(f.Names) == 0 { // embedded
			inner := schemaOf(f.Type, types, visiting)
			if inner.Type == "object" && name == "" {
				for k, v := range inner.Properties {
					p.Properties[k] = v
				}
				p.Required = append(p.Required, inner.Required...)
				continue
			}
			if name == "" {
				name = embeddedName(f.Type)
			}
			if name == "" || !ast.IsExported(name) && !hasTagName(f.Tag) {
				continue
			}
			p.Properties[name] = inner
			if !omitempty && !isPtr {
				p.Required = append(p.Required, name)
			}
			continue
		}
		for _, n := range f.Names {
			if !n.IsExported() {
				continue
			}
			key := n.Name
			if name != "" {
				key = name
			}
			p.Properties[key] = schemaOf(f.Type, types, visiting)
			if !omitempty && !isPtr {
				p.Required = append(p.Required, key)
			}
		}
	}
	return p
}

func embeddedName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.StarExpr:
		return embeddedName(t.X)
	case *ast.SelectorExpr:
		return t.Sel.Name
	}
	return ""
}

func hasTagName(tag *ast.BasicLit) bool {
	name, _, _ := jsonTag(tag)
	return name != ""
}

// jsonTag reads a field's `json:"name,omitempty"` tag.
func jsonTag(tag *ast.BasicLit) (name string, omitempty, skip bool) {
	if tag == nil {
		return "", false, false
	}
	raw, err := strconv.Unquote(tag.Value)
	if err != nil {
		return "", false, false
	}
	v, ok := reflect.StructTag(raw).Lookup("json")
	if !ok {
		return "", false, false
	}
	if v == "-" {
		return "", false, true
	}
	parts := strings.Split(v, ",")
	for _, o := range parts[1:] {
		if o == "omitempty" || o == "omitzero" {
			omitempty = true
		}
	}
	return parts[0], omitempty, false
}
