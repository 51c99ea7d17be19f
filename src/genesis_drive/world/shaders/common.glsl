// Shared by sky.frag and surface.frag: sky, fog, tone curve, sRGB encoding, rain streaks.
// Colours are linear RGB until to_display(); directions are in the renderer's world frame
// (the global frame shifted by the scene origin; metres, z up).

uniform vec3 u_sun_dir;        // unit vector towards the sun
uniform vec3 u_sun_color;      // linear irradiance
uniform vec3 u_sky_horizon;    // linear radiance
uniform vec3 u_sky_zenith;
uniform vec3 u_fog_color;
uniform float u_sun_disc;
uniform float u_fog_density;   // 1/m
uniform float u_fog_height;    // m
uniform float u_exposure;
uniform float u_rain;          // 0..1 streak opacity
uniform uint u_rain_seed;
uniform vec3 u_rain_color;   // display-space colour of the streaks
uniform uint u_view_key;      // hash of the camera channel name: streaks differ per camera
uniform vec2 u_view_origin;    // window coordinates of this view's first pixel in the atlas
uniform float u_image_height;  // pixels

uint hash_u32(uint x) {
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uint hash3(uint a, uint b, uint c) {
    return hash_u32(a ^ hash_u32(b ^ hash_u32(c)));
}

float unit_float(uint h) {
    return float(h >> 8) * (1.0 / 16777216.0);
}

// Sky gradient along unit direction d, without sun or haze (cheap; used for reflections too).
vec3 sky_gradient(vec3 d) {
    return d.z >= 0.0 ? mix(u_sky_horizon, u_sky_zenith, sqrt(d.z))
                      : u_sky_horizon * mix(1.0, 0.55, min(-d.z * 4.0, 1.0));
}

// Radiance of the sky seen along unit direction d: gradient, sun glow and disc, haze towards fog.
vec3 sky_radiance(vec3 d) {
    vec3 c = sky_gradient(d);
    float cs = max(dot(d, u_sun_dir), 0.0);
    float c2 = cs * cs, c4 = c2 * c2, c8 = c4 * c4, c16 = c8 * c8, c32 = c16 * c16;
    float c256 = c32 * c32; c256 *= c256; c256 *= c256;
    c += u_sun_color * (0.06 * c8 + 0.2 * c256 + u_sun_disc * smoothstep(0.99990, 0.99995, cs));
    float path = u_fog_height / max(d.z, 0.02);
    return mix(c, u_fog_color, 1.0 - exp(-u_fog_density * path));
}

vec3 apply_fog(vec3 radiance, float distance_m) {
    return mix(u_fog_color, radiance, exp(-u_fog_density * distance_m));
}

// Display encoding of linear c in [0, 1]: the sRGB curve, its power segment fitted (max error
// 0.012 / 255) by a combination of x, x^(1/2), x^(1/4), x^(1/8) so that it costs square roots only.
vec3 linear_to_srgb(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    vec3 s1 = sqrt(c), s2 = sqrt(s1), s3 = sqrt(s2);
    vec3 curve = -0.01756868 * c + 0.64238198 * s1 + 0.71209205 * s2 - 0.33686237 * s3;
    return mix(12.92 * c, curve, step(vec3(0.0031308), c));
}

// Tone curve: extended Reinhard with white point 3 (x * (1 + x / 9) / (1 + x), clipped at 1).
vec3 tone_map(vec3 x) {
    return min(x * (1.0 + x * (1.0 / 9.0)) / (1.0 + x), vec3(1.0));
}

// Screen-space rain streaks: one layer of slanted columns, each holding a few random dashes.
// pix: image pixel coordinates (x right, y down). Returns coverage in [0, 1].
float rain_layer(vec2 pix, float column_px, float length_px, float density, uint layer) {
    float slant = 0.18;
    vec2 q = vec2(pix.x + slant * pix.y, pix.y);
    float col_f = floor(q.x / column_px);
    uint col = uint(int(col_f) + 100000);
    uint seed = hash3(u_rain_seed, u_view_key, layer);
    float phase = unit_float(hash3(col, seed, 17u));
    float y = q.y / length_px + phase * 13.0;
    float seg = floor(y);
    uint h = hash3(col, uint(int(seg) + 100000), seed);
    float present = step(unit_float(h), density);
    float cx = 0.15 + 0.7 * unit_float(hash_u32(h));
    float dx = abs(q.x / column_px - col_f - cx) * column_px;
    float fy = fract(y);
    float len_frac = 0.35 + 0.5 * unit_float(hash_u32(h ^ 0x9e3779b9u));
    float along = smoothstep(0.0, 0.08, fy) * (1.0 - smoothstep(len_frac - 0.08, len_frac, fy));
    float half_w = max(0.5, u_image_height / 900.0);
    return present * along * (1.0 - smoothstep(half_w * 0.4, half_w * 1.2, dx));
}

float rain_alpha(vec2 pix) {
    float s = u_image_height / 450.0;
    float a = rain_layer(pix, 9.0 * s, 70.0 * s, 0.22, 0u) * 0.55
            + rain_layer(pix, 5.0 * s, 40.0 * s, 0.2, 1u) * 0.35;
    return clamp(a, 0.0, 1.0) * u_rain;
}

// Linear radiance -> display sRGB; with RAIN, the streak overlay is composited in display space.
vec3 to_display(vec3 radiance, vec2 pix) {
    vec3 c = linear_to_srgb(tone_map(u_exposure * max(radiance, vec3(0.0))));
#ifdef RAIN
    c = mix(c, max(u_rain_color, c), rain_alpha(pix));
#endif
    return c;
}
