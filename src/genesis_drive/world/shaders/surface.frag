// Deferred shading of surface pixels: flat face normal, Lambert sun (+ shadow map) and hemisphere
// ambient, local point/spot lights, material specular, wet-road sheen, emission, distance fog.
// Compile-time switches: SHADOWS, LIGHTS, WET (see render.py).
struct Face {
    vec4 normal_emissive;  // unit face normal (world), emissive strength
    vec4 albedo;           // linear RGB albedo (per-face jitter baked in), unused
    ivec4 ids;             // instance, material, unused, unused
};
layout(std430, binding = 0) readonly buffer Faces { Face faces[]; };  // static, then dynamic

uniform isampler2D u_face_tex;    // G-buffer face ids (atlas)
uniform sampler2D u_depth_tex;    // G-buffer camera z (atlas)
uniform mat3 u_pix_to_world_dir;  // R_cam_to_world @ K^-1
uniform vec3 u_cam_pos;
uniform vec3 u_sky_ambient;
uniform vec3 u_ground_ambient;
uniform float u_emissive_gain;
uniform float u_wetness;
#ifdef LIGHTS
uniform int u_num_lights;
uniform vec4 u_light_pos_range[MAX_LIGHTS];  // position (world), range (m)
uniform vec4 u_light_color[MAX_LIGHTS];      // linear intensity at 1 m
uniform vec4 u_light_dir_cos[MAX_LIGHTS];    // spot axis, cos(outer half-angle)
uniform float u_light_cos_inner[MAX_LIGHTS];
#endif
#ifdef SHADOWS
uniform float u_shadow_strength;
uniform mat4 u_world_to_shadow;
uniform float u_shadow_texel;                // metres per shadow-map texel
uniform sampler2DShadow u_shadow_map;
#endif

layout(location = 0) out vec4 o_color;
layout(location = 1) out int o_instance;
layout(location = 2) out int o_material;

// Material ids (genesis_drive.world.mesh.Material).
const int ROAD = 1, CROSSING = 4, TERRAIN = 5;
const int VEHICLE_BODY = 9, VEHICLE_GLASS = 10, LAMP = 12;

void main() {
    ivec2 texel = ivec2(gl_FragCoord.xy);
    int face = max(texelFetch(u_face_tex, texel, 0).r - 1, 0);
    float cam_z = texelFetch(u_depth_tex, texel, 0).r;
    Face f = faces[face];
    int material = f.ids.y;

    vec2 pix = gl_FragCoord.xy - u_view_origin;
    vec3 ray = u_pix_to_world_dir * vec3(pix, 1.0);  // camera z = 1
    vec3 p = u_cam_pos + ray * cam_z;
    float dist = cam_z * length(ray);
    vec3 v = -normalize(ray);
    vec3 n = f.normal_emissive.xyz;
    if (dot(n, v) < 0.0) n = -n;  // double-sided: light the side the camera sees

    vec3 albedo = f.albedo.rgb;
    float ks = 0.0, shininess = 16.0, env = 0.0;
    if (material == VEHICLE_BODY) { ks = 0.25; shininess = 48.0; env = 0.06; }
    else if (material == VEHICLE_GLASS) { ks = 0.8; shininess = 160.0; env = 0.3; }
    else if (material == LAMP) { ks = 0.2; shininess = 32.0; }
    float wet = 0.0;  // wet-road factor: darker albedo, sharp specular, sky reflection
#ifdef WET
    float ground = (material >= ROAD && material <= CROSSING) ? 1.0 : (material == TERRAIN ? 0.3 : 0.0);
    wet = u_wetness * ground * smoothstep(0.6, 0.9, n.z);
    albedo *= 1.0 - 0.5 * wet;
    ks = mix(ks, 1.5, wet);
    shininess = mix(shininess, 120.0, wet);
    env = mix(env, 0.9, wet);
#endif

    float ndl_sun = max(dot(n, u_sun_dir), 0.0);
    float sun_vis = 1.0;
#ifdef SHADOWS
    if (ndl_sun > 0.0) {
        float slope = sqrt(max(1.0 - ndl_sun * ndl_sun, 0.0)) / max(ndl_sun, 0.05);
        vec3 q = p + n * (1.5 * u_shadow_texel) + u_sun_dir * (u_shadow_texel * (0.5 + min(slope, 4.0)));
        vec3 s = (u_world_to_shadow * vec4(q, 1.0)).xyz * 0.5 + 0.5;
        bool inside = all(greaterThan(s, vec3(0.0))) && all(lessThan(s, vec3(1.0)));
        float lit = inside ? texture(u_shadow_map, s) : 1.0;  // bilinear 2x2 PCF
        sun_vis = 1.0 - u_shadow_strength * (1.0 - lit);
    }
#endif
    vec3 e_sun = u_sun_color * (ndl_sun * sun_vis);
    vec3 diffuse = e_sun + mix(u_ground_ambient, u_sky_ambient, 0.5 + 0.5 * n.z);
    vec3 specular = e_sun * pow(max(dot(n, normalize(u_sun_dir + v)), 0.0), shininess);

#ifdef LIGHTS
    for (int i = 0; i < u_num_lights; ++i) {
        vec3 to_light = u_light_pos_range[i].xyz - p;
        float d2 = dot(to_light, to_light);
        vec3 l = to_light * inversesqrt(max(d2, 1e-12));
        float x2 = d2 / (u_light_pos_range[i].w * u_light_pos_range[i].w);
        float window = clamp(1.0 - x2 * x2, 0.0, 1.0);
        float cone = smoothstep(u_light_dir_cos[i].w, u_light_cos_inner[i], dot(-l, u_light_dir_cos[i].xyz));
        vec3 e = u_light_color[i].rgb * (window * window * cone * max(dot(n, l), 0.0) / max(d2, 0.25));
        diffuse += e;
#ifdef WET
        // glints of lamps and headlights on wet roads (flat faces would turn a dry car body white)
        specular += e * (wet * pow(max(dot(n, normalize(l + v)), 0.0), shininess));
#endif
    }
#endif

    vec3 radiance = albedo * diffuse + ks * specular + f.albedo.rgb * (f.normal_emissive.w * u_emissive_gain);
    float g = 1.0 - max(dot(n, v), 0.0);
    float g2 = g * g;
    float fresnel = 0.04 + 0.96 * g2 * g2 * g;
    radiance += sky_gradient(reflect(-v, n)) * (fresnel * env);
    o_color = vec4(to_display(apply_fog(radiance, dist), pix), 1.0);
    o_instance = f.ids.x;
    o_material = material;
}
