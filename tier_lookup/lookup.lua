-- One tier lookup, atomically: read every table's live generation, then probe its bucket.
-- KEYS[1]: the pointer hash (<prefix>:tables)
-- ARGV[1]: normalised number (digits), ARGV[2]: the bucket keys' stem (RedisKeys.bucket_stem)
-- Returns a flat list: table, stored columns, value, for each table holding the number.
local pointers = redis.call('HGETALL', KEYS[1])
local tail = tonumber(string.sub(ARGV[1], -6))
local found = {}
for i = 1, #pointers, 2 do
  local gen, buckets, columns = string.match(pointers[i + 1], '^(%d+)|(%d+)|(.*)$')
  if gen then
    local key = ARGV[2] .. pointers[i] .. ':' .. gen .. ':' .. (tail % tonumber(buckets))
    local value = redis.call('HGET', key, ARGV[1])
    if value then
      found[#found + 1] = pointers[i]
      found[#found + 1] = columns
      found[#found + 1] = value
    end
  end
end
return found
