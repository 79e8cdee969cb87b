//! The Lua scripts of the Redis tier. Each runs atomically on the server.

use std::sync::LazyLock;

/// Fill only if the key's invalidation counter still reads what the loader saw, and no
/// strict write holds the key. `KEYS`: the key, its guard, its holds. `ARGV`: the guard
/// value seen, the envelope, the TTL (ms).
pub(super) static FILL_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        local g = redis.call('GET', KEYS[2])
        if (g or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
        end
        return 0",
    )
});

/// A writer's store: only if the counter still reads what the writer saw and no strict
/// write holds the key, and advance it. `KEYS` and `ARGV` as [`FILL_IF_UNCHANGED`],
/// plus the guard's TTL (ms).
pub(super) static REPLACE_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        local g = redis.call('GET', KEYS[2])
        if (g or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            redis.call('INCR', KEYS[2])
            redis.call('PEXPIRE', KEYS[2], ARGV[4])
            return 1
        end
        return 0",
    )
});

/// Advance the key's invalidation counter and drop the key, in one step. A counter that
/// is not a number (garbage) is replaced by a fresh random one.
/// `KEYS`: the key, its guard. `ARGV`: the guard's TTL (ms), a random fallback value.
pub(super) static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local ok, g = pcall(redis.call, 'INCR', KEYS[2])
        if not ok then
            redis.call('SET', KEYS[2], ARGV[2])
            g = tonumber(ARGV[2])
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
        redis.call('UNLINK', KEYS[1])
        return g",
    )
});

/// Advances a key's guard (garbage is replaced by a fresh value) and drops the key.
/// Needs `KEYS[1]` (the key), `KEYS[2]` (its guard); `guard_ms` and `fresh` are the
/// guard's TTL and a random fallback value.
const INVALIDATE_KEY: &str = r"
    local function invalidate(guard_ms, fresh)
        local ok, g = pcall(redis.call, 'INCR', KEYS[2])
        if not ok then
            redis.call('SET', KEYS[2], fresh)
            g = tonumber(fresh)
        end
        redis.call('PEXPIRE', KEYS[2], guard_ms)
        redis.call('UNLINK', KEYS[1])
        return g
    end";

/// A strict write's first step on one key: hold it (fills are refused while any hold is
/// on it), advance its guard and drop it. `KEYS`: the key, its guard, its holds.
/// `ARGV`: the guard's TTL (ms), a random fallback value, the hold id, the hold's TTL
/// (ms). Returns the guard's new value.
pub(super) static HOLD_KEY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{INVALIDATE_KEY}
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
        redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3])
        redis.call('PEXPIRE', KEYS[3], ARGV[4])
        return invalidate(ARGV[1], ARGV[2])"
    ))
});

/// A strict write's last step on one key: release its hold, and either store the
/// writer's value (write-through: only if the guard still reads what the writer saw and
/// no other write holds the key) or invalidate it. `KEYS` as [`HOLD_KEY`]. `ARGV`: the
/// guard's TTL (ms), a random fallback value, the hold id, then for a store the guard
/// value seen, the envelope and its TTL (ms). Returns 1 when the value was stored, 0
/// when the key was invalidated.
pub(super) static RELEASE_KEY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{INVALIDATE_KEY}
        redis.call('ZREM', KEYS[3], ARGV[3])
        if ARGV[4] and redis.call('EXISTS', KEYS[3]) == 0
            and (redis.call('GET', KEYS[2]) or '0') == ARGV[4] then
            redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
            redis.call('INCR', KEYS[2])
            redis.call('PEXPIRE', KEYS[2], ARGV[1])
            return 1
        end
        invalidate(ARGV[1], ARGV[2])
        return 0"
    ))
});

/// Release a lease only if we still own it. `KEYS`: the lease. `ARGV`: the owner.
pub(super) static RELEASE_LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0",
    )
});

/// The Lua that starts a missing (or unreadable) counter at the server's clock in
/// microseconds: above any value it held before, unless it was bumped more than once a
/// microsecond on average since it was first made. So a counter that vanished (a
/// restart without persistence, an eviction, a `DEL` by hand) never hands out a version
/// it handed out before, and no instance's clock is involved.
const START_MISSING: &str = r"
    local t = redis.call('TIME')
    local start = t[1] .. string.format('%06d', tonumber(t[2]))
    local function current(k)
        local v = redis.call('GET', k)
        if (not v) or (not string.match(v, '^%d+$')) then
            redis.call('SET', k, start)
            return start
        end
        return v
    end";

/// The values of counters, starting missing ones. `KEYS`: the counters.
pub(super) static READ_COUNTERS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local out = {{}}
        for i, k in ipairs(KEYS) do out[i] = current(k) end
        return out"
    ))
});

/// Advances counters (starting missing ones first) and returns their new values.
/// `KEYS`: the counters.
pub(super) static BUMP_COUNTERS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local out = {{}}
        for i, k in ipairs(KEYS) do
            current(k)
            -- A Lua number below 2^53 comes back as an exact integer reply.
            out[i] = redis.call('INCR', k)
        end
        return out"
    ))
});

/// Tag versions: `version(name)` is the sequence at which the tag was last invalidated,
/// or the hash's floor, whichever is higher. The floor is set when the hash is made (or
/// made again after it vanished) to the current sequence, so a tag whose history was
/// lost counts as invalidated then: a lost hash never makes an old entry current again.
/// Needs `START_MISSING` and the locals `tags` (the hash) and `seq` (the sequence).
const TAG_VERSIONS: &str = r"
    local floor
    local function version(name)
        if not floor then
            floor = redis.call('HGET', tags, '_floor')
            if (not floor) or (not string.match(floor, '^%d+$')) then
                floor = current(seq)
                redis.call('HSET', tags, '_floor', floor)
            end
            floor = tonumber(floor)
        end
        local v = tonumber(redis.call('HGET', tags, name) or '0') or 0
        if v < floor then return floor end
        return v
    end";

/// Every read of the tier, in one round trip. `KEYS`: the entries, then the generation,
/// the tag versions, the tag sequence, the holds hash, then the version counters of the
/// entries' namespaces (versioned keys only). `ARGV`: how many entries (`n`); per entry
/// the index of its counter among those (0: none); per entry the version it was made
/// at; per counter its namespace's root. Returns, per entry, its bytes (or nil), its
/// PTTL and a status (1: fine; 0: one of its tags was invalidated after its load began,
/// a strict write holds one of them or its namespace, or its namespace moved to
/// another version; 2: not a string), then the generation and the tag sequence. A
/// tagged entry (envelope format 3) carries its tags in a text section.
pub(super) static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        {HELD_LISTS}
        local n = tonumber(ARGV[1])
        local tags, seq, held = KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
        {TAG_VERSIONS}
        local out = {{}}
        for i = 1, n do
            local v = redis.pcall('GET', KEYS[i])
            local status, pttl = 1, -2
            if type(v) == 'table' then
                v, status = false, 2
            elseif v then
                pttl = redis.call('PTTL', KEYS[i])
                local c = tonumber(ARGV[1 + i]) or 0
                if c > 0 and (current(KEYS[n + 4 + c]) ~= ARGV[1 + n + i]
                    or is_held(held, 'r:' .. ARGV[1 + 2 * n + c])) then
                    status = 0
                end
                if status == 1 and string.byte(v, 3) == 3 and string.len(v) >= 33 then
                    local len = struct.unpack('<I4', v, 30)
                    local as_of
                    for line in string.gmatch(string.sub(v, 34, 33 + len), '[^\n]+') do
                        if not as_of then
                            as_of = tonumber(line) or 0
                        elseif version(line) > as_of or is_held(held, 't:' .. line) then
                            status = 0
                            break
                        end
                    end
                end
            end
            out[#out + 1] = v
            out[#out + 1] = pttl
            out[#out + 1] = status
        end
        out[#out + 1] = current(KEYS[n + 1])
        out[#out + 1] = current(seq)
        return out"
    ))
});

/// The tag sequence and the versions of tags. `KEYS`: the tag versions, the tag
/// sequence; `ARGV`: tag names. Returns the sequence, then each version (a Lua number
/// below 2^53 comes back as an exact integer reply).
pub(super) static READ_TAGS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local tags, seq = KEYS[1], KEYS[2]
        {TAG_VERSIONS}
        local out = {{current(seq)}}
        for i, name in ipairs(ARGV) do out[i + 1] = version(name) end
        return out"
    ))
});

/// Invalidates tags: draws the next sequence and records it as each tag's version.
/// `KEYS` and `ARGV` as [`READ_TAGS`]. Returns the sequence.
pub(super) static BUMP_TAGS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local tags, seq = KEYS[1], KEYS[2]
        {TAG_VERSIONS}
        version('_')
        current(seq)
        local s = redis.call('INCR', seq)
        for _, name in ipairs(ARGV) do redis.call('HSET', tags, name, s) end
        return s"
    ))
});

/// One cache-side step of a write, in one round trip, announced to the other instances
/// from inside it. Per key: store the writer's envelope (write-through) if no strict
/// write holds the key and its guard still reads what the writer saw, else drop the key;
/// either way advance its guard (garbage is replaced by a fresh value). Then bump the
/// namespaces' counters, and the tags, all at the next tag sequence in one `HSET`; last,
/// publish the message with the counters the step drew appended to it (an
/// `r {root}={version}` line per namespace, `s {seq}` for the tags).
/// `KEYS`: per key the key, its guard, its holds; then the tag versions, the tag
/// sequence and one counter per namespace (left out by a step with no namespace, tag or
/// message: a cluster's part on a key's slot). `ARGV`: the number of keys, the number of
/// namespaces, the guard's TTL (ms), a random fallback value, the publish command, the
/// channel (empty: publish nothing), the message; per key the guard value seen (empty:
/// invalidate; `*`: store unless held), the envelope and its TTL (ms); the namespaces'
/// roots; the tags. Returns per key the guard's new value and 1 if the envelope was
/// stored (else 0); then each namespace's new version; then the tag sequence (0: no tags).
pub(super) static WRITE_STEP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local nkeys, nroots = tonumber(ARGV[1]), tonumber(ARGV[2])
        local tags, seq = KEYS[3 * nkeys + 1], KEYS[3 * nkeys + 2]
        {TAG_VERSIONS}
        local out, lines = {{}}, {{}}
        for i = 1, nkeys do
            local k, g, h = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
            local seen = ARGV[5 + 3 * i]
            local stored = 0
            if seen ~= '' and redis.call('EXISTS', h) == 0
                and (seen == '*' or (redis.call('GET', g) or '0') == seen) then
                redis.call('SET', k, ARGV[6 + 3 * i], 'PX', ARGV[7 + 3 * i])
                stored = 1
            else
                redis.call('UNLINK', k)
            end
            local ok, v = pcall(redis.call, 'INCR', g)
            if not ok then
                redis.call('SET', g, ARGV[4])
                v = tonumber(ARGV[4])
            end
            redis.call('PEXPIRE', g, ARGV[3])
            out[#out + 1] = v
            out[#out + 1] = stored
        end
        local at = 7 + 3 * nkeys
        for i = 1, nroots do
            local c = KEYS[3 * nkeys + 2 + i]
            current(c)
            local v = redis.call('INCR', c)
            out[#out + 1] = v
            lines[#lines + 1] = 'r ' .. ARGV[at + i] .. '=' .. string.format('%.0f', v)
        end
        local s = 0
        if #ARGV > at + nroots then
            version('_')
            current(seq)
            s = redis.call('INCR', seq)
            local fields = {{}}
            for i = at + nroots + 1, #ARGV do
                fields[#fields + 1] = ARGV[i]
                fields[#fields + 1] = s
                if #fields >= 2000 then
                    redis.call('HSET', tags, unpack(fields))
                    fields = {{}}
                end
            end
            if #fields > 0 then redis.call('HSET', tags, unpack(fields)) end
            lines[#lines + 1] = 's ' .. string.format('%.0f', s)
        end
        out[#out + 1] = s
        if ARGV[6] ~= '' then
            local message = ARGV[7]
            if #lines > 0 then message = message .. '\n' .. table.concat(lines, '\n') end
            redis.call(ARGV[5], ARGV[6], message)
        end
        return out"
    ))
});

/// Holds of namespaces and tags, in `{prefix}:held` (`r:{root}` / `t:{tag}` → a list
/// `id=expiry_ms,…`). Defines `now_ms`, `edit(hash, field, id, until)` (drops expired
/// entries and `id`'s, then adds `id` until `until` unless it is nil) and
/// `is_held(hash, field)` (one `HLEN` when nothing is held anywhere).
const HELD_LISTS: &str = r"
    local now_ms
    do
        local t = redis.call('TIME')
        now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local function edit(hash, field, id, until_ms)
        local list = redis.call('HGET', hash, field)
        local out = {}
        if list then
            for hid, e in string.gmatch(list, '([^,=]+)=(%d+)') do
                if hid ~= id and tonumber(e) > now_ms then out[#out + 1] = hid .. '=' .. e end
            end
        end
        if until_ms then out[#out + 1] = id .. '=' .. string.format('%.0f', until_ms) end
        if #out == 0 then
            redis.call('HDEL', hash, field)
        else
            redis.call('HSET', hash, field, table.concat(out, ','))
        end
    end
    local any_held
    local function is_held(hash, field)
        if any_held == nil then any_held = redis.call('HLEN', hash) > 0 end
        if not any_held then return false end
        local list = redis.call('HGET', hash, field)
        if not list then return false end
        for e in string.gmatch(list, '=(%d+)') do
            if tonumber(e) > now_ms then return true end
        end
        return false
    end";

/// Drops the strict writes whose hold expired from the registry (`KEYS[2]` the ids,
/// `KEYS[3]` their messages).
const TRIM_REGISTRY: &str = r"
    local function trim_registry()
        for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms)) do
            redis.call('HDEL', KEYS[3], id)
        end
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
    end";

/// Bumps a strict write's namespaces and tags and marks each held (`until_ms`) or
/// released (nil) for hold `id`: `roots` counters from `KEYS[counter_at]` with their
/// roots from `ARGV[root_at]`, then the tags from `ARGV[root_at + roots]` on. Needs
/// `START_MISSING`, `HELD_LISTS`, `TAG_VERSIONS` (with `tags` and `seq`) and the holds
/// hash in `KEYS[1]`. Returns the tag sequence (0: no tags) and the new versions.
const BUMP_AND_MARK: &str = r"
    local function bump_and_mark(id, until_ms, counter_at, root_at, roots)
        local versions, s = {}, 0
        for i = 0, roots - 1 do
            current(KEYS[counter_at + i])
            versions[#versions + 1] = redis.call('INCR', KEYS[counter_at + i])
            edit(KEYS[1], 'r:' .. ARGV[root_at + i], id, until_ms)
        end
        if #ARGV >= root_at + roots then
            version('_')
            current(seq)
            s = redis.call('INCR', seq)
            for i = root_at + roots, #ARGV do
                redis.call('HSET', tags, ARGV[i], s)
                edit(KEYS[1], 't:' .. ARGV[i], id, until_ms)
            end
        end
        return s, versions
    end";

/// A strict write's first step on namespaces and tags, and its announcement, in one
/// step: bump and hold each namespace, bump and hold the tags, record the write and its
/// message in the registry, publish the message, and return the instances' leases.
/// `KEYS`: the holds hash, the registry (ids, messages), the leases, the tag versions,
/// the tag sequence, then one version counter per namespace. `ARGV`: the hold id, its
/// TTL (ms), the message, the publish command, the channel, the number of namespaces,
/// their roots, then the tags. Returns the time (ms), the tag sequence (0: no tags),
/// each namespace's new version, then instance and lease expiry (ms) pairs.
pub(super) static HOLD_SHARED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        {HELD_LISTS}
        {TRIM_REGISTRY}
        local tags, seq = KEYS[5], KEYS[6]
        {TAG_VERSIONS}
        {BUMP_AND_MARK}
        local id, ttl = ARGV[1], tonumber(ARGV[2])
        local until_ms = now_ms + ttl
        local s, versions = bump_and_mark(id, until_ms, 7, 7, tonumber(ARGV[6]))
        local out = {{now_ms, s}}
        for _, v in ipairs(versions) do out[#out + 1] = v end
        trim_registry()
        redis.call('ZADD', KEYS[2], until_ms, id)
        redis.call('HSET', KEYS[3], id, ARGV[3])
        redis.call(ARGV[4], ARGV[5], ARGV[3])
        redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms)
        for _, v in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')) do
            out[#out + 1] = v
        end
        return out"
    ))
});

/// A strict write's last step on namespaces and tags: bump each namespace and the tags
/// again and release their holds, and drop the write from the registry. `KEYS` and
/// `ARGV` as [`HOLD_SHARED`] without the leases, the TTL, the message, the command and
/// the channel: `ARGV` is the hold id, the number of namespaces, their roots, the tags.
/// Returns the tag sequence (0: no tags), then each namespace's new version.
pub(super) static RELEASE_SHARED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        {HELD_LISTS}
        local tags, seq = KEYS[4], KEYS[5]
        {TAG_VERSIONS}
        {BUMP_AND_MARK}
        local id = ARGV[1]
        local s, versions = bump_and_mark(id, nil, 6, 3, tonumber(ARGV[2]))
        local out = {{s}}
        for _, v in ipairs(versions) do out[#out + 1] = v end
        redis.call('ZREM', KEYS[2], id)
        redis.call('HDEL', KEYS[3], id)
        return out"
    ))
});

/// An instance renews its L1 lease and learns every strict write in progress. `KEYS`:
/// the leases, the registry (ids, messages). `ARGV`: the instance, the lease's TTL
/// (ms). Returns the time (ms), then the message of each write in progress.
pub(super) static RENEW_LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{HELD_LISTS}
        {TRIM_REGISTRY}
        redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
        trim_registry()
        local out = {{now_ms}}
        for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
            local message = redis.call('HGET', KEYS[3], id)
            if message then out[#out + 1] = message end
        end
        return out"
    ))
});

/// The versions of namespaces and whether a strict write holds each. `KEYS`: the
/// counters, then the holds hash. `ARGV`: the roots. Returns a version and a flag (1:
/// held) per namespace.
pub(super) static READ_VERSIONS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        {HELD_LISTS}
        local out = {{}}
        for i, root in ipairs(ARGV) do
            out[#out + 1] = current(KEYS[i])
            out[#out + 1] = is_held(KEYS[#KEYS], 'r:' .. root) and 1 or 0
        end
        return out"
    ))
});

/// Counts one request of a client in its fixed window, in one atomic step: `INCR` of
/// KEYS[1]; the window (ARGV[1] ms) starts at the first request, when the counter has no
/// expiry yet. A counter that holds garbage is started again. Returns `{count, ms left
/// in the window}`.
pub(super) static COUNT_REQUEST: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local ok, n = pcall(redis.call, 'INCR', KEYS[1])
if not ok then
  redis.call('DEL', KEYS[1])
  n = redis.call('INCR', KEYS[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
",
    )
});

/// The entries of one slot, for a Redis Cluster (where [`READ`] cannot reach the
/// counters in the same script). `KEYS`: the entries, all in one slot. Returns, per
/// entry, its bytes (or nil), its PTTL and a status (1: a string; 2: not a string).
pub(super) static READ_ENTRIES: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local out = {}
        for _, k in ipairs(KEYS) do
            local v = redis.pcall('GET', k)
            local status, pttl = 1, -2
            if type(v) == 'table' then
                v, status = false, 2
            elseif v then
                pttl = redis.call('PTTL', k)
            end
            out[#out + 1] = v
            out[#out + 1] = pttl
            out[#out + 1] = status
        end
        return out",
    )
});

/// The generation, the tag sequence, the versions of tags and of namespaces, and which
/// of them strict writes hold, for a Redis Cluster read after [`READ_ENTRIES`]. `KEYS`:
/// the generation, the tag versions, the tag sequence, the holds hash, then one counter
/// per namespace (one slot). `ARGV`: the number of tags, the tag names, then the
/// namespaces' roots. Returns the generation, the sequence, a version and a held flag
/// (1: held) per tag, then a version and a held flag per namespace.
pub(super) static READ_STATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        {HELD_LISTS}
        local tags, seq, held = KEYS[2], KEYS[3], KEYS[4]
        {TAG_VERSIONS}
        local out = {{current(KEYS[1]), current(seq)}}
        local t = tonumber(ARGV[1])
        for i = 2, t + 1 do
            out[#out + 1] = version(ARGV[i])
            out[#out + 1] = is_held(held, 't:' .. ARGV[i]) and 1 or 0
        end
        for i = t + 2, #ARGV do
            out[#out + 1] = current(KEYS[4 + i - t - 1])
            out[#out + 1] = is_held(held, 'r:' .. ARGV[i]) and 1 or 0
        end
        return out"
    ))
});
