// Runs the Application health script from argocd/install/values.yaml in a Lua
// interpreter (fengari; Argo CD runs gopher-lua, and the script keeps to the
// Lua 5.1 subset both accept) against the cases of health-cases.yaml.
import { requireDep } from "./deps.mjs";

const { lua, lauxlib, lualib, to_luastring, to_jsstring } = requireDep("fengari");

function push(L, v) {
  if (v === null || v === undefined) lua.lua_pushnil(L);
  else if (typeof v === "boolean") lua.lua_pushboolean(L, v);
  else if (typeof v === "number") lua.lua_pushnumber(L, v);
  else if (typeof v === "string") lua.lua_pushstring(L, to_luastring(v));
  else if (Array.isArray(v)) {
    lua.lua_createtable(L, v.length, 0);
    v.forEach((x, i) => {
      push(L, x);
      lua.lua_rawseti(L, -2, i + 1);
    });
  } else {
    lua.lua_createtable(L, 0, 0);
    for (const [k, x] of Object.entries(v)) {
      push(L, x);
      lua.lua_setfield(L, -2, to_luastring(k));
    }
  }
}

function field(L, name) {
  lua.lua_getfield(L, -1, to_luastring(name));
  const s = lua.lua_isnil(L, -1) ? null : to_jsstring(lua.lua_tostring(L, -1) ?? to_luastring(""));
  lua.lua_pop(L, 1);
  return s;
}

// Evaluates script with the global `obj` set, as Argo CD does.
export function runHealth(script, obj) {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  push(L, obj);
  lua.lua_setglobal(L, to_luastring("obj"));
  if (lauxlib.luaL_loadstring(L, to_luastring(script)) !== lua.LUA_OK || lua.lua_pcall(L, 0, 1, 0) !== lua.LUA_OK) {
    throw new Error(`Lua error: ${to_jsstring(lua.lua_tostring(L, -1))}`);
  }
  if (!lua.lua_istable(L, -1)) throw new Error("the health script did not return a table");
  return { status: field(L, "status"), message: field(L, "message") };
}

// Returns a list of failures (empty when every case holds).
export function checkHealthCases(script, cases) {
  const failures = [];
  for (const c of cases) {
    const obj = { apiVersion: "argoproj.io/v1alpha1", kind: "Application", metadata: { name: "child" } };
    if (c.annotations) obj.metadata.annotations = c.annotations;
    if (c.status) obj.status = c.status;
    try {
      const got = runHealth(script, obj);
      if (got.status !== c.expect) failures.push(`${c.name}: health ${got.status}, expected ${c.expect}`);
      else if (c.message && !(got.message || "").includes(c.message)) {
        failures.push(`${c.name}: message "${got.message}" lacks "${c.message}"`);
      }
    } catch (e) {
      failures.push(`${c.name}: ${e.message}`);
    }
  }
  return failures;
}
